"""Group values by output error with the members' parameters tied (sysid.stage1.tied)."""

from types import SimpleNamespace

import numpy as np
import pytest

from sysid.config import Config
from sysid.io.dataset import Dataset
from sysid.phase1.from_truth import model_from_truth
from sysid.simulation import simulate
from sysid.stage1.continuation import fit_continued
from sysid.stage1.output_error import Corrected, OutputErrorRegression
from sysid.stage1.shared import SharedEstimates, shared_estimates
from sysid.stage1.tied import (
    CHI2_TIE,
    CONTINUED_LABEL,
    tie_columns,
    tie_rejected,
    tied_group_values,
    tied_members,
    untied_behind,
    untied_from,
)


def test_tie_columns_share_a_groups_slope_and_offset():
    labels = np.array([0, 0, 1, 1, 1])
    tied = np.array([True, True, True, False, True])
    columns = tie_columns(labels, tied, n_rxn=2)
    # slopes: groups 0 and 1, then metabolite 3's own; offsets likewise after them; then the 2 scales
    np.testing.assert_array_equal(columns, [0, 0, 1, 2, 1, 3, 3, 4, 5, 4, 6, 7])


def test_members_far_from_their_group_or_alone_in_it_are_not_tied():
    values = np.array([[-1.0, 4.0], [-2.0, 12.0], [-3.0, 20.0]])
    labels = np.array([0, 0, 0, 1, 1, 2])
    points = values[labels].copy()
    points[1, 1] += 0.5  # 0.5 sd off: tied
    points[2, 1] += 4.0  # 4 sds off (r^2 16 > CHI2_TIE): its own
    cov = np.tile(np.diag([1.0, 1.0]), (len(labels), 1, 1))
    members = np.array([True, True, True, True, False, True])
    tied = tied_members(points, cov, labels, members, values)
    # group 1 keeps one member (the other is not a member), group 2 has one: neither is tied
    np.testing.assert_array_equal(tied, [True, True, False, False, False, False])
    assert 4.0**2 > CHI2_TIE > 0.5**2


@pytest.fixture(scope="module")
def refined():
    cfg = Config().replace("simulation", n_metabolites=18, n_reactions=36, n_frames=600, seed=2)
    sim = simulate(cfg.simulation, 0.01)
    model = model_from_truth(sim.network, sim.truth.log_k, cfg.graph_model, log_k_noise=0.1, seed=3,
                             concentrations=sim.concentrations)
    data = Dataset(sim.concentrations, sim.dcdt, sim.positions, sim.network, sim.delta_t, euler_steps=True)
    t = sim.truth
    slope, offset = -t.lambdas[t.types], t.lambdas[t.types] * t.baselines[t.types]
    fit = fit_continued(data, model, Corrected(slope, offset, np.ones(data.network.n_reactions)), (10,), use=None)
    assert fit is not None
    return data, model, fit, t


def test_tied_fit_gives_each_group_one_value_with_its_error(refined):
    """The test groups by the true types (the function only takes labels); a well-determined member put in the
    wrong group is far from it and keeps its own parameters."""
    data, model, fit, truth = refined
    labels = truth.types.copy()
    wrong = int(np.argmin(np.where(labels == 1, fit.offset_se_, np.inf)))
    labels[wrong] = 0
    members = np.ones(len(labels), bool)
    gls = shared_estimates(np.column_stack([fit.slope_, fit.offset_]), fit.estimate_cov_, labels, members, 2)
    told = []
    tied = tied_group_values(data, model, fit, labels, members, gls,
                             progress=lambda done, **fields: told.append((done, fields["total"])))
    assert told == [(0, 1), (1, 1)]  # a progress bar over the tied fit
    se = np.sqrt(tied.cov[:, [0, 1], [0, 1]])
    assert np.all(np.isfinite(se)) and np.all(se > 0)
    true = np.column_stack([-truth.lambdas, truth.lambdas * truth.baselines])
    z = np.abs(tied.values - true) / se
    assert np.all(z < 3.5)  # seeds 1-3: largest 1.1-2.4
    assert not np.allclose(tied.values, gls.values)  # refitted, not copied
    assert not tied_members(np.column_stack([fit.slope_, fit.offset_]), fit.joint_cov_, labels, members,
                            gls.values)[wrong]


def test_tied_parameters_stay_equal_and_share_one_covariance(refined):
    data, model, fit, truth = refined
    tied = np.ones(len(truth.types), bool)
    columns = tie_columns(truth.types, tied, len(fit.params_.scale))
    group_start = np.array([fit.slope_[truth.types == k].mean() for k in range(truth.n_types)])
    offsets = np.array([fit.offset_[truth.types == k].mean() for k in range(truth.n_types)])
    start = Corrected(group_start[truth.types], offsets[truth.types], fit.params_.scale)
    out = OutputErrorRegression(window=fit.window, observation=fit.observation, tie=columns, n_iterations=3).fit(
        data, model, start, fit.states_)
    for k in range(truth.n_types):
        members = truth.types == k
        assert np.ptp(out.slope_[members]) == 0 and np.ptp(out.offset_[members]) == 0
        assert np.ptp(out.cov_[members], axis=0).max() == 0
    with pytest.raises(ValueError, match="free='all'"):
        OutputErrorRegression(window=10, tie=columns, free="scales")


def test_no_tied_member_keeps_the_first_order_values(refined):
    data, model, fit, truth = refined
    gls = SharedEstimates(np.array([[-1.0, 1.0], [-2.0, 2.0]]), np.tile(np.eye(2), (2, 1, 1)))
    assert tied_group_values(data, model, fit, truth.types, np.zeros(len(truth.types), bool), gls) is gls


def test_a_tie_the_readings_reject_is_not_taken():
    """Likelihood ratio: 10 members tied into 2 groups remove 16 parameters; a rise of the weighted cost within
    chi-squared(16)'s 99.9% quantile (39.3) keeps the tie, a rise far beyond it (a shared value that some
    members' readings cannot follow) does not, nor does a fall far beyond it."""
    labels, tied = np.repeat([0, 1], 5), np.ones(10, bool)
    untied = SimpleNamespace(cost_=1000.0, rms_=1.0)
    assert not tie_rejected(untied, SimpleNamespace(cost_=1030.0), labels, tied)
    assert tie_rejected(untied, SimpleNamespace(cost_=1045.0), labels, tied)
    assert not tie_rejected(SimpleNamespace(cost_=1000.0, rms_=1.2), SimpleNamespace(cost_=1045.0), labels, tied)
    # a tied cost far below the untied one: the untied fit had not converged, and the test cannot be made
    assert not tie_rejected(untied, SimpleNamespace(cost_=970.0), labels, tied)
    assert tie_rejected(untied, SimpleNamespace(cost_=950.0), labels, tied)
    assert untied_behind(untied, SimpleNamespace(cost_=950.0), labels, tied)
    assert not untied_behind(untied, SimpleNamespace(cost_=970.0), labels, tied)
    assert not untied_behind(untied, SimpleNamespace(cost_=1045.0), labels, tied)


def test_an_untied_fit_that_stopped_short_is_continued_from_the_tied_one(refined):
    """An untied fit left away from its optimum (every slope and offset 30% too large, no pass taken): the tied
    fit from it reaches a cost far below its own, the caller is told, and the untied fit continued from the tied
    one ends at most at the tied cost (every parameter free, steps taken only downhill), converged, where the
    untied fit that had converged ended."""
    data, model, fit, truth = refined
    start = Corrected(1.3 * fit.params_.slope, 1.3 * fit.params_.offset, fit.params_.scale)
    stopped = OutputErrorRegression(window=fit.window, observation=fit.observation, n_iterations=0).fit(
        data, model, start, fit.states_)
    members = np.ones(len(truth.types), bool)
    points = np.column_stack([stopped.slope_, stopped.offset_])
    gls = shared_estimates(points, stopped.estimate_cov_, truth.types, members, truth.n_types)
    ahead: list[OutputErrorRegression] = []
    values = tied_group_values(data, model, stopped, truth.types, members, gls, on_ahead=ahead.append)
    assert len(ahead) == 1 and ahead[0].cost_ < stopped.cost_
    assert values is gls  # the test cannot be made against a fit that stopped short: first-order values stand
    told = []
    continued = untied_from(data, model, ahead[0], stopped,
                            progress=lambda done, **fields: told.append((done, fields["description"])))
    assert told == [(0, CONTINUED_LABEL), (1, CONTINUED_LABEL)]  # a progress bar over the continued fit
    assert continued is not None and continued.cost_ <= ahead[0].cost_
    # and it reaches the optimum of the untied fit that had converged (the fixture)
    assert continued.cost_ == pytest.approx(fit.cost_, rel=1e-4)
    # a continued fit that leaves the typical metabolite further off its readings than before is not taken
    assert untied_from(data, model, ahead[0], SimpleNamespace(metabolite_rms_=0.5 * continued.metabolite_rms_)) is None
