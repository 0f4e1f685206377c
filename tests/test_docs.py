"""The tutorials run: every ```bash and ```python block of a doc, in order, in a fresh folder.

Blocks fenced as ```text or ```console are shown, not run (the default-size
commands, for instance). A doc's blocks share one working folder, so a block
can use files that an earlier block wrote.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = ("quickstart.md", "bring_your_own.md", "robustness.md", "sbml.md", "sweeps.md", "genome.md",
             "nonlinear.md")
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
RUNNERS = {"bash": ["bash", "-euo", "pipefail", "-c"], "python": [sys.executable, "-c"]}


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, source) of the runnable blocks, in document order."""
    return [(lang, src) for lang, src in FENCE.findall(path.read_text()) if lang in RUNNERS]


@pytest.mark.parametrize("doc", TUTORIALS)
def test_tutorial_runs(doc, tmp_path):
    blocks = code_blocks(DOCS / doc)
    assert blocks, f"{doc} has no runnable block"
    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks", ignore=shutil.ignore_patterns("results"))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "MPLBACKEND": "Agg", "SYSID_CACHE": str(tmp_path / "cache"), "CUDA_VISIBLE_DEVICES": ""}
    for n, (lang, src) in enumerate(blocks, 1):
        proc = subprocess.run([*RUNNERS[lang], src], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"{doc} block {n} ({lang}) failed:\n{src}\n--- stdout\n{proc.stdout}\n" \
                                     f"--- stderr\n{proc.stderr}"


def test_docs_link_to_existing_files():
    """Relative links of every doc point at files of the repository; the index lists every doc."""
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    for doc in DOCS.glob("*.md"):
        for target in link.findall(doc.read_text()):
            if "://" not in target:
                assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
    index = (DOCS / "index.md").read_text()
    for doc in DOCS.glob("*.md"):
        if doc.name != "index.md":
            assert f"({doc.name})" in index, f"docs/index.md does not link {doc.name}"
