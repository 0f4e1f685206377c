"""The detectability report: z-scores, identification and the most collinear reaction corrections."""

import csv
import dataclasses

import numpy as np
from scipy import sparse

from sysid.config import Config
from sysid.pipeline import fit_to_folder
from sysid.stage1.detectability import column_cosines, detectability


def test_cosines_and_ranking_have_known_answers():
    # slope columns 0, 1; reaction columns 2, 3, 4
    X = np.array([[1.0, 0.0, 1.0, 0.0, 1.0],
                  [1.0, 0.0, -1.0, 0.0, 1.0],
                  [0.0, 1.0, 0.0, 2.0, 1.0],
                  [0.0, 1.0, 0.0, 0.0, 1.0]])
    cos = column_cosines(X, slice(0, 2), slice(2, 5))
    np.testing.assert_allclose(cos, [[0.0, 0.0, np.sqrt(0.5)], [0.0, np.sqrt(0.5), np.sqrt(0.5)]])
    np.testing.assert_allclose(column_cosines(sparse.csr_matrix(X), slice(0, 2), slice(2, 5)), cos)
    report = detectability(np.array([-1.0, 0.1]), np.array([0.1, 0.1]), np.array([True, False]), X,
                           slice(0, 2), slice(2, 5), top=2)
    np.testing.assert_allclose(report.z_score, [10.0, 1.0])
    assert report.identified.tolist() == [True, False]  # stage 1's decision, passed through
    assert report.collinear_reactions[0].tolist() == [2, -1]  # only reaction 2 (column 4) touches metabolite 0
    assert report.collinear_reactions[1].tolist() == [1, 2]


def test_fit_writes_detectability_csv(small_dir, small_frozen, tmp_path):
    metrics = fit_to_folder(small_dir, small_frozen, tmp_path / "fit", Config())
    with open(tmp_path / "fit" / "detectability.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 30 and set(rows[0]) >= {"metabolite", "z_score", "identified", "collinear_reactions"}
    assert all(float(r["z_score"]) > 2 for r in rows)  # noise-free: every slope is resolved
    assert metrics["stage1_n_unidentifiable"] == 0
    assert all(1 <= len(r["collinear_reactions"].split()) <= 3 for r in rows)  # reactions touching it, at most 3


def test_bound_columns_on_request(small_dir, small_frozen, tmp_path):
    cfg = Config()
    cfg = cfg.replace("sysid", stage1=dataclasses.replace(cfg.sysid.stage1, bound_window=10))
    fit_to_folder(small_dir, small_frozen, tmp_path / "fit", cfg)
    with open(tmp_path / "fit" / "detectability.csv") as fh:
        rows = list(csv.DictReader(fh))
    crb = np.array([float(r["crb_slope"]) for r in rows])
    assert np.all(np.isfinite(crb)) and np.all(crb > 0)  # noise-free data: a tiny but positive floor
