"""The Levenberg-Marquardt iteration shared by the shooting fit and the output error."""

import numpy as np
from scipy import linalg

from sysid.stage1.levenberg import minimise

DAMPINGS = (1e-6, 1e-3, 1e-1, 1.0, 10.0)
TIMES = np.linspace(0.0, 4.0, 30)
RATE, AMPLITUDE = 0.7, 2.5
READINGS = AMPLITUDE * np.exp(-RATE * TIMES)


def _problem(readings=READINGS):
    """Least squares for y = a exp(-k t) with ``readings`` y: the linearisation and the other callbacks of
    ``minimise`` (the state is the parameters with their normal equations); ``tried`` records each damping a
    trial was made with."""
    tried: list[float] = []

    def residual(p):
        return readings - p[0] * np.exp(-p[1] * TIMES)

    def linearised(p):
        e = np.exp(-p[1] * TIMES)
        J = np.column_stack([e, -p[0] * TIMES * e])
        r = residual(p)
        return (p, J.T @ J, J.T @ r), float(r @ r)

    def propose(state, damping):
        tried.append(damping)
        p, A, b = state
        return p + linalg.solve(A + damping * np.diag(np.diag(A)), b)

    def trial_cost(p):
        r = residual(p)
        return float(r @ r)

    return linearised, propose, trial_cost, tried


def test_the_iteration_reaches_the_least_squares_answer():
    linearised, propose, trial_cost, _ = _problem()
    state, cost = linearised(np.array([1.0, 0.2]))
    (p, _, _), final = minimise(state, cost, propose=propose, trial_cost=trial_cost, accept=linearised,
                                dampings=DAMPINGS, first=2, max_iterations=50, tolerance=1e-12)
    np.testing.assert_allclose(p, [AMPLITUDE, RATE], rtol=1e-8)
    assert final < 1e-20 < cost


def test_each_iteration_starts_one_level_below_the_last_accepted_one():
    linearised, propose, trial_cost, tried = _problem()
    state, cost = linearised(np.array([1.0, 0.2]))
    steps: list[tuple[int, float, float]] = []
    minimise(state, cost, propose=propose, trial_cost=trial_cost, accept=linearised, dampings=DAMPINGS, first=3,
             max_iterations=3, tolerance=0.0, on_step=lambda *step: steps.append(step))
    assert tried[0] == DAMPINGS[3]  # the first iteration starts at ``first``
    accepted = [damping for _, _, damping in steps]
    assert [iteration for iteration, _, _ in steps] == list(range(1, len(steps) + 1))
    # every iteration after an accepted step begins one level below that step's damping
    starts = [i for i in range(1, len(tried)) if tried[i] <= tried[i - 1]]
    for level, start in zip(accepted, starts, strict=False):
        assert tried[start] == DAMPINGS[max(DAMPINGS.index(level) - 1, 0)]
    costs = [cost] + [c for _, c, _ in steps]
    assert all(b < a for a, b in zip(costs, costs[1:], strict=False))


def test_it_stops_when_the_cost_no_longer_falls_by_the_tolerance():
    # readings off the model (a cost that stays above zero), so the tolerance and not a failed step ends the fit
    linearised, propose, trial_cost, _ = _problem(READINGS + 0.05 * np.sin(7.0 * TIMES))
    state, cost = linearised(np.array([1.0, 0.2]))
    steps: list[float] = []
    minimise(state, cost, propose=propose, trial_cost=trial_cost, accept=linearised, dampings=DAMPINGS, first=0,
             max_iterations=100, tolerance=1e-3, on_step=lambda _i, c, _d: steps.append(c))
    costs = [cost, *steps]
    falls = [(a - b) / a for a, b in zip(costs, costs[1:], strict=False)]
    assert len(falls) > 1 and falls[-1] < 1e-3 and all(f >= 1e-3 for f in falls[:-1])


def test_a_start_at_the_optimum_is_returned_as_it_is():
    linearised, propose, trial_cost, tried = _problem()
    state, cost = linearised(np.array([AMPLITUDE, RATE]))
    out, final = minimise(state, cost, propose=propose, trial_cost=trial_cost, accept=linearised,
                          dampings=DAMPINGS, first=0, max_iterations=10, tolerance=0.0)
    assert out is state and final == cost
    assert tried == list(DAMPINGS)  # every level tried once, none accepted


def test_a_level_whose_system_is_singular_is_skipped():
    linearised, propose, trial_cost, _ = _problem()

    def fragile(state, damping):
        if damping < 1.0:
            raise linalg.LinAlgError("singular")
        return propose(state, damping)

    state, cost = linearised(np.array([1.0, 0.2]))
    steps: list[float] = []
    (p, _, _), final = minimise(state, cost, propose=fragile, trial_cost=trial_cost, accept=linearised,
                                dampings=DAMPINGS, first=0, max_iterations=200, tolerance=1e-12,
                                on_step=lambda _i, _c, d: steps.append(d))
    assert steps and min(steps) >= 1.0 and final < cost
    np.testing.assert_allclose(p, [AMPLITUDE, RATE], rtol=1e-4)



def _run_logged(tolerance, max_iterations, settled):
    """A fit of readings off the model, from a poor start: its parameters, final cost, accepted costs and the
    callbacks that made its states (``linearised`` or ``settled``), with or without ``settle``."""
    linearised, propose, trial_cost, _ = _problem(READINGS + 0.05 * np.sin(7.0 * TIMES))
    calls: list[str] = []
    steps: list[float] = []

    def accept(p):
        calls.append("linearised")
        return linearised(p)

    def settle(p):
        calls.append("settled")
        return (p, None, None), trial_cost(p)

    state, cost = linearised(np.array([1.0, 0.2]))
    out, final = minimise(state, cost, propose=propose, trial_cost=trial_cost, accept=accept, dampings=DAMPINGS,
                          first=0, max_iterations=max_iterations, tolerance=tolerance,
                          on_step=lambda _i, c, _d: steps.append(c), settle=settle if settled else None)
    return out[0], final, steps, calls


def test_the_step_that_ends_the_iterations_is_settled_without_a_linearisation():
    # the same path as without ``settle`` (same answer, same accepted costs), but the last accepted trial is
    # settled instead of linearised: when the tolerance ends the fit, and when the iterations run out
    for tolerance, max_iterations in ((1e-3, 100), (0.0, 4)):
        p_lin, final_lin, steps_lin, calls_lin = _run_logged(tolerance, max_iterations, settled=False)
        p_set, final_set, steps_set, calls_set = _run_logged(tolerance, max_iterations, settled=True)
        np.testing.assert_array_equal(p_set, p_lin)
        assert final_set == final_lin and steps_set == steps_lin and len(steps_lin) > 1
        assert calls_lin == ["linearised"] * len(steps_lin)
        assert calls_set == ["linearised"] * (len(steps_lin) - 1) + ["settled"]
        if tolerance == 0.0:
            assert len(steps_lin) == max_iterations
