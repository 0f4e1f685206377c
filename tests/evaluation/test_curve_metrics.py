"""Curve errors against the true law: known answers."""

import numpy as np
import pytest
import torch

from sysid.evaluation.curve_metrics import curve_errors, node_curve_errors, observed_grid
from sysid.simulation.homeostasis import HomeostasisLaw
from sysid.truth import Truth


def _truth(law=None):
    types = np.array([0, 0, 1, 1])
    return Truth(types=types, lambdas=np.array([0.001, 0.002]), baselines=np.array([4.0, 6.0]),
                 log_k=np.zeros(3, np.float32), law=law)


CONC = np.column_stack([np.linspace(0, 10, 101), np.linspace(2, 6, 101), np.linspace(1, 3, 101),
                        np.linspace(0, 20, 101)])


def test_grid_spans_each_metabolites_percentiles():
    grid = observed_grid(CONC)
    np.testing.assert_allclose(grid[0], np.percentile(CONC, 1, axis=0))
    np.testing.assert_allclose(grid[-1], np.percentile(CONC, 99, axis=0))


def test_exact_curves_score_zero_and_a_shift_scores_its_relative_size():
    truth = _truth()
    assert curve_errors("x", truth.rates, truth, CONC) == {"x_curve_err_0": 0.0, "x_curve_err_1": 0.0}
    shift = 1e-4
    out = curve_errors("x", lambda g: truth.rates(g) + shift, truth, CONC)
    grid = observed_grid(CONC)
    # rms of a line over an evenly spaced grid is lambda * sd(grid); the error of a constant shift is the shift
    expected = [np.mean(shift / (truth.lambdas[truth.types[m]] * grid[:, m].std(axis=0))) for m in ([0, 1], [2, 3])]
    assert out["x_curve_err_0"] == pytest.approx(expected[0]) and out["x_curve_err_1"] == pytest.approx(expected[1])


def test_a_line_through_a_saturating_law_is_scored_against_the_curve():
    law = HomeostasisLaw("saturating", {"lambda": np.array([0.001, 0.002]), "baseline": np.array([4.0, 6.0]),
                                        "scale": np.array([2.0, 3.0])})
    truth = _truth(law)
    out = curve_errors("x", _truth().rates, truth, CONC)  # the tangent line at the set point
    assert out["x_curve_err_0"] > 0.3 and out["x_curve_err_1"] > 0.1


def test_node_curve_error_of_a_model_that_is_the_truth():
    truth = _truth()

    class Exact:
        dtype, device = torch.float64, torch.device("cpu")

        def node(self, c):
            return torch.as_tensor(truth.rates(c.numpy()))

    assert node_curve_errors(Exact(), truth, CONC) == {"node_curve_err_0": 0.0, "node_curve_err_1": 0.0}
