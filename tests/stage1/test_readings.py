"""The output error's noise model (sysid.stage1.readings): censored readings at zero, log residuals for
relative noise, and which kind of noise a record has."""

import numpy as np
import pytest

from sysid.config import Config
from sysid.simulation import simulate
from sysid.stage1.readings import censored_terms, metabolite_rms, relative_fits_better, weighed_residuals
from sysid.stage1.residuals import record_noise_is_relative

REGIME = {"n_metabolites": 18, "n_reactions": 36, "n_frames": 600, "seed": 1}


def test_censored_terms_are_the_likelihood_of_a_cut_reading():
    """-2 log P(x + e <= 0) with its half-derivatives, against scipy and finite differences; far above zero they
    are the squares of a residual x, at zero the cut is as likely as not."""
    from scipy import stats

    x, sd = np.array([0.0, 0.01, 0.03, 0.2]), np.full(4, 0.02)
    cost, wr, wi = censored_terms(x, sd)
    np.testing.assert_allclose(cost, -2 * stats.norm.logcdf(-x / sd), rtol=1e-12)
    h = 1e-6
    up, down = censored_terms(x + h, sd)[0], censored_terms(x - h, sd)[0]
    np.testing.assert_allclose(wr, -(up - down) / (4 * h), rtol=1e-6)
    np.testing.assert_allclose(wi, (up - 2 * cost + down) / (2 * h**2), rtol=1e-3)
    assert cost[0] == pytest.approx(2 * np.log(2)) and np.all((wi > 0) & (wi <= 1 / sd**2))
    far = sd[-1] ** 2
    assert wr[-1] * far == pytest.approx(-x[-1], rel=0.02) and wi[-1] * far == pytest.approx(1, abs=0.03)


@pytest.mark.filterwarnings("error")
def test_censored_terms_hold_far_above_a_zero_reading():
    """A state that runs away above a reading cut at zero (a trial step's): the terms are those of a plain residual,
    to rounding, with no overflow (the density-over-tail ratio was 78% off at 1e8 sds and overflowed beyond)."""
    sd = 0.01
    x = sd * np.array([1e3, 1e4, 1e8, 1e12, 1e100, 1e150])
    cost, wr, wi = censored_terms(x, np.full(len(x), sd))
    np.testing.assert_allclose(cost * sd**2 / x**2, 1.0, rtol=1e-4)  # plus (2 log a + log 2 pi) / a^2
    np.testing.assert_allclose(-wr * sd**2 / x, 1.0, rtol=1e-5)  # 1 + 1 / a^2 + ...
    np.testing.assert_allclose(wi * sd**2, 1.0, rtol=1e-5)  # 1 - 1 / a^2 + ...


def test_metabolite_rms_counts_the_readings_above_zero():
    rng = np.random.default_rng(0)
    sd = np.array([0.1, 0.2, 0.1])
    fitted = np.ones((50, 4, 3))
    observed = fitted + sd * rng.standard_normal(fitted.shape)
    observed[:, :, 2] = np.where(np.arange(4) < 2, 0.0, 1.0 + 3 * sd[2])  # half cut at zero, half 3 sds off
    rms = metabolite_rms(observed, fitted, sd, relative=False)
    assert np.all(np.abs(rms[:2] - 1) < 0.15) and rms[2] == pytest.approx(3.0)
    held = fitted.copy()
    held[0, 1, 0] = 0.0  # a state at zero under relative noise: log residual against LOG_FLOOR
    assert metabolite_rms(np.abs(observed), held, sd, relative=True)[0] > 10  # one of 200 readings, ~270 sds off


def test_relative_noise_is_fitted_on_log_readings():
    """Relative noise: the objective is the weighted squares of log y - log x, its gradient in x is -2 w r / x
    (finite differences), and a reading at zero is left out."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 5.0, (3, 4))
    observed = x * np.exp(0.05 * rng.standard_normal(x.shape))
    observed[0, 0] = 0.0
    sd = np.full(4, 0.05)
    wr, w, objective, squares, factor = weighed_residuals(observed, x, sd, relative=True)
    r = np.log(observed[observed > 0]) - np.log(x[observed > 0])
    assert objective == squares == pytest.approx(np.sum((r / 0.05) ** 2))
    assert w[0, 0] == 0.0 and wr[0, 0] == 0.0
    h = 1e-7
    for i, j in [(0, 1), (2, 3)]:
        step = np.zeros_like(x)
        step[i, j] = h
        numeric = (weighed_residuals(observed, x + step, sd, True)[2]
                   - weighed_residuals(observed, x - step, sd, True)[2]) / (2 * h)
        assert numeric == pytest.approx(-2 * wr[i, j] * factor[i, j], rel=1e-5)


@pytest.mark.parametrize("kind", ["absolute", "relative"])
def test_noise_kind_is_told_by_the_record_and_by_residuals(kind):
    """The kind of measurement noise, from a dense record's roughness and from a fit's residuals (here the
    noise itself) at metabolites of levels 0.1 to 10."""
    cfg = Config().replace("simulation", **REGIME)
    level = 0.02 if kind == "absolute" else 0.05
    sim = simulate(cfg.simulation, level, noise_kind=kind)
    assert record_noise_is_relative(sim.concentrations) == (kind == "relative")
    rng = np.random.default_rng(1)
    fitted = np.geomspace(0.1, 10.0, 20) * rng.uniform(0.8, 1.2, (30, 10, 20))  # 30 windows of 10 samples
    noise = level * rng.standard_normal(fitted.shape)
    observed = fitted * np.exp(noise) if kind == "relative" else fitted + noise
    assert relative_fits_better(np.maximum(observed, 0.0), fitted, 10) == (kind == "relative")
