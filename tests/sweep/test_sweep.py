"""Sweeps: the sweep file is checked before anything runs, cells expand and hash as documented, and a sweep
records every cell (ok, failed, timed out), resumes without redoing work and stops cleanly on Ctrl-C."""

from __future__ import annotations

import csv
import time

import pytest

from sysid.errors import SysidInputError
from sysid.sweep import KINDS, expand, load_sweep, register, run_sweep, sweep_from_dict
from sysid.sweep.spec import LOG_K_NOISE_AXIS
from tests.helpers import assert_one_line_error, sysid

SMALL = {"simulation": {"n_metabolites": 18, "n_reactions": 36, "n_frames": 600}}


def spec(grid, **extra):
    return sweep_from_dict({"base": SMALL, "grid": grid, **extra})


def rows(out):
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("grid, extra, words", [
    ({}, {}, "grid is empty"),
    (None, {}, "grid is empty"),
    ({"simulation.sed": [1]}, {}, "'simulation.sed' is not a config key"),
    ({"simulation": [1]}, {}, "names a config section"),
    ({"simulation.seed": ["a"]}, {}, "must be of type int"),
    ({"training.measurement_noise_level": [0.0, "x"]}, {}, "must be of type float"),
    ({"simulation.seed": []}, {}, "non-empty list"),
    ({"simulation.seed": 3}, {}, "non-empty list"),
    ({"simulation.seed": [1]}, {"stage": "fitt"}, "stage 'fitt'"),
    ({"simulation.seed": [1]}, {"grids": {}}, "key 'grids' is not known"),
    ({"simulation.seed": [1]}, {"frozen": {"phase1": True, "log_k_noise": [0.1]}}, "only applies with from_truth"),
    ({"simulation.seed": [1]}, {"frozen": {"from_truth": True, "log_k_noise": [-0.1]}}, "log_k_noise"),
    ({"simulation.seed": [1]}, {"frozen": {"from_truth": True, "phase1": True}}, "exactly one"),
    ({"simulation.seed": [1]}, {"timeout_s": 0}, "timeout_s"),
    ({"simulation.seed": [1]}, {"kind": "sbml-someday"}, "kind 'sbml-someday'"),
])
def test_bad_sweep_files_are_refused(grid, extra, words):
    with pytest.raises(SysidInputError, match=words):
        spec(grid, **extra)


def test_expansion_is_the_cartesian_product_with_log_k_noise_as_an_axis():
    s = spec({"simulation.seed": [1, 2, 3], "training.measurement_noise_level": [0, 0.002]},
             frozen={"from_truth": True, "log_k_noise": [0.0, 0.1]})
    cells = expand(s)
    assert s.axes == ("simulation.seed", "training.measurement_noise_level", LOG_K_NOISE_AXIS)
    assert len(cells) == 12 and len({c.id for c in cells}) == 12
    assert dict(cells[0].values) == {"simulation.seed": 1, "training.measurement_noise_level": 0.0,
                                     LOG_K_NOISE_AXIS: 0.0}
    assert dict(cells[-1].values) == {"simulation.seed": 3, "training.measurement_noise_level": 0.002,
                                      LOG_K_NOISE_AXIS: 0.1}
    cfg = cells[3].config()  # seed 1, noise 0.002, log_k noise 0.1
    assert (cfg.simulation.seed, cfg.training.measurement_noise_level, cells[3].log_k_noise) == (1, 0.002, 0.1)
    assert cfg.simulation.n_metabolites == 18  # from the base


def test_cell_id_is_a_hash_of_the_resolved_config(tmp_path):
    """Same resolved cell -> same id, however it was written; any change of the config -> another id."""
    base = tmp_path / "small.yaml"
    base.write_text("simulation:\n  n_metabolites: 18\n  n_reactions: 36\n  n_frames: 600\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: small.yaml\ngrid:\n  simulation.seed: [1.0, 2]\n")  # base relative to the sweep file
    from_file = [c.id for c in expand(load_sweep(sweep))]
    inline = [c.id for c in expand(spec({"simulation.seed": [1, 2]}))]
    assert from_file == inline
    other = [c.id for c in expand(spec({"simulation.seed": [1, 2]}, stage="refine"))]
    assert not set(other) & set(inline)
    with pytest.raises(SysidInputError, match="repeats a cell"):
        expand(spec({"simulation.seed": [1, 1]}))


def test_four_cells_are_ok_with_ratios_near_one_and_resume_runs_nothing(tmp_path, monkeypatch):
    """2 seeds x measurement noise 0 and 0.002 on an 18-metabolite regime (600 steps), in-process."""
    out = tmp_path / "sweep"
    s = spec({"simulation.seed": [1, 2], "training.measurement_noise_level": [0.0, 0.002]})
    report = run_sweep(s, out, workers=1)
    assert (report.progress.done, report.progress.failed) == (4, 0)
    table = rows(out)
    assert [r["status"] for r in table] == ["ok"] * 4
    for r in table:
        ratios = [float(v) for k, v in r.items() if k.startswith(("stage1_slope_ratio_", "stage1_offset_ratio_"))]
        assert len(ratios) == 4 and all(0.95 <= x <= 1.05 for x in ratios), r
        assert float(r["stage1_group_acc"]) == 1.0
        assert (out / "cells" / r["cell_id"] / "fit" / "analysis.log").is_file()
        assert float(r["seconds"]) > 0 and float(r["peak_memory_mb"]) > 0
    assert "stage1_avg_slope_ratio" in (out / "summary.md").read_text()
    assert len(list((out / "plots").glob("*.png"))) == 3  # a heatmap (seed x noise) per plotted metric

    before = (out / "results.csv").read_bytes()
    monkeypatch.setitem(KINDS, "synthetic", lambda cell, folder: pytest.fail("resume ran a finished cell"))
    report = run_sweep(s, out, workers=1, resume=True)
    assert (report.skipped, report.progress.total) == (4, 0)
    assert (out / "results.csv").read_bytes() == before


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path):
    """A window longer than the data fails inside stage 1; a type count above the metabolites fails the config."""
    out = tmp_path / "sweep"
    s = spec({"sysid.stage1.window": [0, 5000], "simulation.n_metabolite_types": [2, 30]})
    report = run_sweep(s, out, workers=1)
    table = {(r["sysid.stage1.window"], r["simulation.n_metabolite_types"]): r for r in rows(out)}
    assert table[("0", "2")]["status"] == "ok"
    assert table[("5000", "2")]["status"] == "failed"
    assert "fewer than 3 windows of 5000" in table[("5000", "2")]["error"]
    assert "n_metabolite_types 30 exceeds n_metabolites" in table[("0", "30")]["error"]
    assert (report.progress.done, report.progress.failed) == (1, 3)
    failed = table[("5000", "2")]["cell_id"]
    assert not (out / "cells" / failed).exists()  # nothing half-written
    assert "SysidInputError" in (out / "cells" / f"{failed}.error.txt").read_text()
    assert "Cells that did not finish" in (out / "summary.md").read_text()


@pytest.fixture
def toy_kind(monkeypatch):
    """A registered cell kind that fails, hangs or is interrupted on demand (by the cell's seed)."""

    def run(cell, folder):
        seed = cell.config().simulation.seed
        if seed == 2:
            raise RuntimeError("boom\nsecond line")
        if seed == 3:
            time.sleep(30)
        if seed == 4:
            raise KeyboardInterrupt
        return {"stage1_avg_slope_ratio": 1.0, "stage1_group_acc": 1.0}

    monkeypatch.setitem(KINDS, "toy", run)
    return "toy"


def test_crash_and_timeout_are_recorded_then_resume_reruns_only_them(tmp_path, toy_kind, monkeypatch):
    out = tmp_path / "sweep"
    s = spec({"simulation.seed": [1, 2, 3]}, kind=toy_kind, timeout_s=0.5)
    run_sweep(s, out, workers=1)
    assert [(r["status"], r["error"]) for r in rows(out)] == [
        ("ok", ""), ("failed", "RuntimeError: boom"), ("timeout", "ran past timeout_s = 0.5 s")]
    calls = []
    register(toy_kind)(lambda cell, folder: calls.append(cell.id) or {"stage1_group_acc": 0.5})
    run_sweep(s, out, workers=1, resume=True)
    assert [r["status"] for r in rows(out)] == ["ok"] * 3
    assert calls == [c.id for c in expand(s)][1:]


def test_ctrl_c_keeps_the_finished_rows(tmp_path, toy_kind):
    out = tmp_path / "sweep"
    s = spec({"simulation.seed": [1, 4, 5]}, kind=toy_kind)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(s, out, workers=1)
    assert [r["simulation.seed"] for r in rows(out)] == ["1"]
    assert (out / "summary.md").is_file()


def test_cli_refuses_bad_input_before_any_cell_runs(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("grid:\n  simulation.seeds: [1, 2]\n")
    out = tmp_path / "out"
    assert_one_line_error(sysid("sweep", sweep, "--out", out, "--workers", "1"), "simulation.seeds")
    assert not out.exists()
    sweep.write_text("grid:\n  simulation.seed: [1]\n")
    out.mkdir()
    assert_one_line_error(sysid("sweep", sweep, "--out", out, "--workers", "1"), "--resume", "--force")
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    proc = sysid("sweep", sweep, "--out", tmp_path / "new", "--workers", "2")
    assert_one_line_error(proc, 'pip install "sysid[ray]"')
    assert not (tmp_path / "new").exists()
