"""Levenberg-Marquardt iterations with a ladder of damping levels, for the fits that simulate the frozen model.

The shooting fit (:mod:`sysid.stage1.shooting`) and the output error
(:mod:`sysid.stage1.output_error`) both linearise a simulation around the
current parameters, solve the damped normal equations, and keep a step only
when the simulated cost falls. They differ in what a linearisation holds; the
iteration is the same and lives here:

- each iteration tries the damping levels from one below the level of the last
  accepted step upwards (the first iteration from ``first``), and takes the
  first trial whose cost is below the current one; a level whose system is
  singular or not finite is skipped;
- the iterations stop when no level lowers the cost, when an accepted step
  lowers it by less than ``tolerance`` of it, or after ``max_iterations``;
- a fit that does not need the linearisation at its answer (only the answer
  itself) passes ``settle``: the step that ends the iterations is then taken
  without one (a linearisation costs several simulations' worth).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from scipy import linalg

log = logging.getLogger(__name__)
State = TypeVar("State")
Trial = TypeVar("Trial")


def minimise(state: State, cost: float, *, propose: Callable[[State, float], Trial],
             trial_cost: Callable[[Trial], float], accept: Callable[[Trial], tuple[State, float]],
             dampings: tuple[float, ...], first: int, max_iterations: int, tolerance: float,
             on_step: Callable[[int, float, float], None] | None = None,
             settle: Callable[[Trial], tuple[State, float]] | None = None) -> tuple[State, float]:
    """Iterate from the linearisation ``state`` (whose cost is ``cost``); the last accepted state and its cost.

    ``propose(state, damping)`` is the damped step's trial, ``trial_cost(trial)`` its cost (a simulation without
    sensitivities), ``accept(trial)`` the linearisation at an accepted trial with its cost. ``on_step(iteration,
    cost, damping)`` is told of each accepted step. With ``settle``, the accepted step that ends the iterations
    (its trial cost lowers the cost by less than ``tolerance`` of it, or it is the last iteration) becomes the
    state returned by ``settle(trial)`` (the answer, no linearisation) instead of ``accept(trial)``; ``settle``
    must give the cost ``trial_cost`` gave."""
    level = first
    for iteration in range(max_iterations):
        for index in range(level, len(dampings)):
            try:
                trial = propose(state, dampings[index])
            except (linalg.LinAlgError, ValueError):  # a singular or non-finite system: damp more
                continue
            t_cost = trial_cost(trial)
            log.debug("damping %g: cost %.6g (now %.6g)", dampings[index], t_cost, cost)
            if t_cost < cost:
                break
        else:
            return state, cost
        level = max(index - 1, 0)
        last = iteration == max_iterations - 1 or cost - t_cost < tolerance * abs(cost)
        state, new_cost = (settle if last and settle is not None else accept)(trial)
        if on_step is not None:
            on_step(iteration + 1, new_cost, dampings[index])
        done = (last and settle is not None) or cost - new_cost < tolerance * abs(cost)
        cost = new_cost
        if done:
            break
    return state, cost
