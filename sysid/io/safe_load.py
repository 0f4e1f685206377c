"""Loading of torch files that never runs code from the file.

Checkpoints and datasets are files people download and share. ``torch.load`` is
always called with ``weights_only=True``: tensors, numbers, strings and plain
containers load; anything that needs arbitrary unpickling (and could run code)
is refused with a one-line input error before any of it executes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from sysid.errors import SysidInputError


def torch_load(path: Path):
    """``torch.load(path, weights_only=True)`` on the CPU; unreadable or unsafe files give a one-line error."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # not a refused object: the bytes are no pickle at all
            raise SysidInputError(f"{path} cannot be read by torch.load (corrupt file): rewrite it") from None
        raise SysidInputError(
            f"{path} holds Python objects beyond tensors and plain containers, and loading it could run code: "
            "refused; save only tensors, numbers, strings, lists and dicts (e.g. a state_dict)"
        ) from None
    except Exception as exc:  # torch raises many unrelated types for corrupt files
        raise SysidInputError(f"{path} cannot be read by torch.load ({type(exc).__name__}): rewrite it") from None
