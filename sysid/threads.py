"""Threads for batched numerical work: as many as the BLAS library may use, so that one setting (its
``OMP_NUM_THREADS``, or a threadpoolctl limit such as a sweep cell's pin) governs numpy, torch and the thread
pools of stage 1 alike."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def allowed() -> int:
    """The number of threads the BLAS libraries loaded now may use (the smallest, at least 1)."""
    from threadpoolctl import threadpool_info

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
