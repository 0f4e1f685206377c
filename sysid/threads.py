"""Threads for batched numerical work: as many as the BLAS library may use, so that one setting (its
``OMP_NUM_THREADS``, or a threadpoolctl limit such as a sweep cell's pin) governs numpy, torch and the thread
pools of stage 1 alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_POOLS: ContextVar[int | None] = ContextVar("sysid_pool_threads", default=None)


def allowed() -> int:
    """The number of threads the BLAS libraries loaded now may use (the smallest, at least 1); inside
    :func:`pools_only`, the budget it kept for the block's thread pools."""
    from threadpoolctl import threadpool_info

    kept = _POOLS.get()
    if kept is not None:
        return kept
    counts = [int(lib["num_threads"]) for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return max(1, min(counts, default=1))


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def pools_only() -> Iterator[None]:
    """BLAS on one thread inside the block, the budget (:func:`allowed` before it) kept for the block's own
    thread pools. Work that alternates small BLAS calls with thread pools runs faster so: after a call on
    several threads OpenBLAS's idle workers spin-wait (about 0.1 s), taking the cores the pools and the next
    calls need. Threads the pools start see the BLAS limit of one, as before."""
    from threadpoolctl import threadpool_limits

    token = _POOLS.set(allowed())
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        _POOLS.reset(token)
