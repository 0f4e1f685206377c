"""Stage 2 on biased and curved starts: the conserved-identity correction and curve distillation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sysid.config import Config, RefineConfig
from sysid.curves import SWEEP, line_fits, node_curves
from sysid.evaluation.curve_metrics import curve_errors
from sysid.io.dataset import load_dataset, write_dataset
from sysid.model import MetabolismModel
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate
from sysid.stage1.forms import GroupCurve
from sysid.stage1.result import HomeostasisFit
from sysid.stage2.gauss_newton import GroupBasis, correct_group_curves
from sysid.stage2.init import initialise_from_fit
from sysid.stage2.refine import loss_projection, refine, split_windows


def _config(gauss_newton_steps: int) -> Config:
    cfg = Config().replace("simulation", n_metabolites=18, n_reactions=30, n_frames=400)
    cfg = cfg.replace("training", data_augmentation_loop=4, homeostasis_time_step=8, batch_size=4)
    return cfg.replace("sysid", refine=RefineConfig(validate_every=2, eval_windows=16,
                                                    gauss_newton_steps=gauss_newton_steps))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = _config(3)
    sim = simulate(cfg.simulation)
    folder = tmp_path_factory.mktemp("tiny_nonlinear")
    write_dataset(sim, folder)
    frozen = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.05, seed=2,
                              concentrations=sim.concentrations)
    return load_dataset(folder), sim.truth, frozen


def _biased_fit(truth, bias: float = 0.10) -> HomeostasisFit:
    """Stage 1 with every slope 10% too steep and standard errors that claim 1% precision."""
    s = truth.slopes()[truth.types] * (1.0 + bias)
    o = truth.offsets()[truth.types].copy()
    return HomeostasisFit(s, o, 0.01 * np.abs(s), 0.01 * np.abs(o), truth.types.copy())


def _slope_ratios(model, truth) -> np.ndarray:
    slopes, _ = line_fits(SWEEP, node_curves(model))
    return np.array([np.mean(slopes[truth.types == t]) / truth.slopes()[t] for t in range(truth.n_types)])


def test_planted_slope_bias_is_corrected_within_two_percent(tiny):
    data, truth, frozen = tiny
    result = refine(frozen, data, _biased_fit(truth), options=_config(3).refine_options(), seed=0)
    np.testing.assert_allclose(_slope_ratios(result.init_model, truth), 1.10, rtol=1e-3)  # the biased start
    assert result.kept == "refined"
    assert np.all(np.abs(_slope_ratios(result.model, truth) - 1.0) < 0.02), _slope_ratios(result.model, truth)
    assert result.refined_val_loss < 0.01 * result.init_val_loss


def test_group_basis_round_trip_keeps_lines_and_curves():
    curve = GroupCurve("saturating", (0.001, -0.002), (2.0, 4.0), 5.0, 0.1, 30.0, 0.0, 0.0)
    line = GroupCurve("linear", (0.0, -0.001), (), 5.0, 0.1, 30.0, 0.0, 0.0)  # chosen: the fit's own lines count
    groups = np.array([0, 0, 1, 1])
    fit = HomeostasisFit(np.array([-1e-3, -1e-3, -2e-3, -2e-3]), np.array([4e-3, 4e-3, 1.2e-2, 1.2e-2]),
                         np.full(4, 1e-5), np.full(4, 1e-4), groups, curves=(line, curve), form_bics=({}, {}))
    basis = GroupBasis.from_fit(fit)
    np.testing.assert_allclose(basis.beta[0], [-1e-3, 4e-3])
    np.testing.assert_allclose(basis.prior_sd[0], [1e-5 / np.sqrt(2), 1e-4 / np.sqrt(2)])
    back = basis.to_fit(fit)
    c = np.linspace(0, 20, 9)[:, None].repeat(4, 1)
    np.testing.assert_allclose(back.curve_values(c), fit.curve_values(c))


def test_curved_groups_are_distilled_into_mlp_node(tiny):
    data, truth, _ = tiny
    curve = GroupCurve("saturating", (0.0, -0.002), (3.0, 5.0), 0.0, 0.0, 20.0, 0.0, 0.0)
    line = GroupCurve("linear", (0.0, -0.001), (), 5.0, 0.0, 20.0, 0.0, 0.0)
    n = data.n_metabolites
    groups = (np.arange(n) >= n // 2).astype(int)
    fit = HomeostasisFit(np.full(n, -1e-3), np.full(n, 4e-3), np.full(n, 1e-5), np.full(n, 1e-5), groups,
                         curves=(line, curve), form_bics=({}, {}))
    model = MetabolismModel(data.network, Config().graph_model, torch.Generator().manual_seed(0))
    initialise_from_fit(model, fit, float(data.concentrations.max()))
    c = np.linspace(0.0, 20.0, 41)
    got = node_curves(model, c)
    want = fit.curve_values(c[:, None].repeat(n, 1)).T
    assert np.max(np.abs(got - want)) < 0.02 * np.abs(want).max()


def test_conserved_identity_corrects_the_shape_of_a_curve(tmp_path):
    """Stage 1's saturating curves with K 20% off, the set point 0.5 off and 10% off in level: the correction
    frees the shape too, so both types' curves come back (the truth is in the family)."""
    cfg = Config().replace("simulation", n_metabolites=30, n_reactions=60, n_frames=1200, homeostasis_form="saturating",
                           homeostatic_scale_per_type=(2.0, 3.0))
    sim = simulate(cfg.simulation)
    write_dataset(sim, tmp_path)
    data, truth = load_dataset(tmp_path), sim.truth
    lam, cb, k = truth.law.params["lambda"], truth.law.params["baseline"], truth.law.params["scale"]
    curves = tuple(GroupCurve("saturating", (0.0, -1.1 * lam[t]), (1.2 * k[t], cb[t] + 0.5), 0.0, 0.5, 20.0, 0.0, 0.0)
                   for t in range(2))
    n = data.n_metabolites
    fit = HomeostasisFit(np.full(n, -1e-3), np.full(n, 4e-3), np.full(n, 1e-5), np.full(n, 1e-5),
                         truth.types.copy(), curves=curves, form_bics=({}, {}))
    windows = split_windows(data.n_frames, 16, 0.2, 8)
    projection = loss_projection(data.network, "auto")
    corrected, history = correct_group_curves(fit, data.concentrations, windows.train, 16, data.delta_t,
                                              projection, 6)
    before = curve_errors("s", fit.curve_values, truth, data.concentrations)
    after = curve_errors("s", corrected.curve_values, truth, data.concentrations)
    assert min(before.values()) > 0.1, before
    assert max(after.values()) < 0.01, after
    assert history[-1] < 1e-3 * history[0]
    for t in range(2):
        np.testing.assert_allclose(corrected.curve(t).shape, (k[t], cb[t]), rtol=0.02)
