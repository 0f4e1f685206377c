"""Atomic outputs: results appear complete or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sysid.errors import SysidInputError


def check_writable(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise SysidInputError(f"{out} already exists: pass --force to overwrite it or choose another --out")
    if not out.parent.exists():
        raise SysidInputError(f"the parent folder of {out} does not exist: create {out.parent} first")


@contextlib.contextmanager
def atomic_dir(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; rename it to ``out`` only if the block succeeds."""
    out = Path(out).absolute()
    check_writable(out, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    os.replace(tmp, out)


@contextlib.contextmanager
def atomic_file(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; move it to ``out`` only if the block succeeds."""
    out = Path(out).absolute()
    check_writable(out, force)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
