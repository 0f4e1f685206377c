"""Loading a downloaded file never runs code from it."""

from __future__ import annotations

import os

import pytest
import torch

from sysid.errors import SysidInputError
from sysid.io.checkpoint import load_checkpoint
from sysid.io.safe_load import torch_load
from tests.helpers import MG_SAMPLE, assert_one_line_error, sysid


class _Payload:
    """Unpickling this object would create a file: the marker that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _crafted(path, marker) -> None:
    torch.save({"model_state_dict": {"a": torch.zeros(3, 2), "log_k": _Payload(str(marker))}}, path)


def test_crafted_checkpoint_is_refused_and_its_payload_does_not_run(tmp_path):
    ckpt, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    _crafted(ckpt, marker)
    with pytest.raises(SysidInputError, match="could run code"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_crafted_checkpoint_on_the_command_line_exits_2_and_runs_nothing(tmp_path):
    ckpt, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    _crafted(ckpt, marker)
    proc = sysid("fit", "--data", MG_SAMPLE, "--model", ckpt, "--out", tmp_path / "fit")
    assert_one_line_error(proc, "evil.pt", "refused")
    assert not marker.exists()
    assert not (tmp_path / "fit").exists()


def test_tensors_and_plain_containers_load(tmp_path):
    blob = {"w": torch.arange(3.0), "edges": (torch.tensor([0, 1]), [1.5, "x"]), "n": 2}
    torch.save(blob, tmp_path / "ok.pt")
    back = torch_load(tmp_path / "ok.pt")
    assert torch.equal(back["w"], blob["w"]) and back["edges"][1] == [1.5, "x"] and back["n"] == 2
