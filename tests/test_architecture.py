"""The layout rules of docs/architecture.md, checked on the source tree."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import sysid

PACKAGE = Path(sysid.__file__).resolve().parent
MAX_LINES = 400
# The reporting layer (and the CLI above it) may draw figures and write files; nothing below it may.
# sysid.sweep sits above the pipeline: its cell runner calls the jobs, its plots module draws the sweep's figures.
REPORTING = {"sysid.pipeline", "sysid.reports", "sysid.evaluation.plots", "sysid.sweep.synthetic", "sysid.sweep.plots"}
PLOTTING = ("matplotlib", "sysid.evaluation.plots", "sysid.reports", "sysid.pipeline")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every sysid module (or matplotlib) imported anywhere in the file, at any depth, outside TYPE_CHECKING."""
    found = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # imports for annotations only: no runtime dependency
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in found if n.split(".")[0] in ("sysid", "matplotlib")}


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def test_no_module_is_over_the_size_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert max(sizes.values()) <= MAX_LINES, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_numerical_modules_import_no_plotting_and_no_writers():
    for name, path in _modules().items():
        if name in REPORTING:
            continue
        bad = {i for i in _imports(path) if i.startswith(PLOTTING)}
        assert not bad, f"{name} imports {bad}"


def test_there_are_no_import_cycles():
    modules = _modules()
    graph = {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}
    # a package's __init__ importing its own submodules is not a cycle
    graph = {n: {d for d in deps if not n.startswith(d + ".") and not d.startswith(n + ".")}
             for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(dep):], dep]))
            if dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    """Run code in a new interpreter, from a folder outside the repository."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir(),
                          env=env)


def test_the_cli_is_not_installed_as_a_generic_cli_module():
    assert _fresh_python("import cli").returncode != 0
    assert _fresh_python("import sysid_cli.main").returncode == 0


def test_help_does_not_import_torch():
    code = ("import sys; from sysid_cli.main import app\n"
            "try:\n    app(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    proc = _fresh_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_public_api_names_resolve():
    for name in sysid.__all__:
        assert getattr(sysid, name) is not None, name
