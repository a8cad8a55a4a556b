"""The package's shape: data flows one way, libraries never import CLIs, modules stay small.

The import-linter contracts in ``pyproject.toml`` (also run by ``.ci/run`` as ``lint-imports``)
check the layers, the library -> CLI ban and the absence of cycles over every import, those
inside functions included. The tests below check what import-linter cannot: that every module
sits on a declared layer, that no project import hides inside a library function or behind
``importlib``, and that no module outgrows one idea.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "video_eleatt"
MAX_LINES = 700
# Command-line modules sit at the edges; they may import lazily to keep start-up fast.
CLI_MODULES = {"video_eleatt.cli", "video_eleatt.config_cli", "video_eleatt.__main__"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _is_cli(name: str) -> bool:
    return name in CLI_MODULES or name.endswith(".cli")


def _contracts() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def test_import_linter_contracts_hold():
    assert {contract["id"] for contract in _contracts()} >= {"layers", "no-cli-below", "no-cycles"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_module_sits_on_a_layer():
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    containers = [name.strip() for layer in layers for name in layer.replace(":", "|").split("|")]
    stray = [
        name
        for name in _modules()
        if name != "video_eleatt"
        and not any(name == c or name.startswith(c + ".") for c in containers)
    ]
    assert stray == [], f"modules outside every layer of pyproject's contract: {stray}"


def _function_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Project imports inside functions: (line, module)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and (
                inner.level > 0 or (inner.module or "").startswith("video_eleatt")
            ):
                found.append((inner.lineno, inner.module or "."))
            elif isinstance(inner, ast.Import):
                found += [
                    (inner.lineno, alias.name)
                    for alias in inner.names
                    if alias.name.startswith("video_eleatt")
                ]
    return found


def test_library_modules_import_at_the_top():
    hidden = {
        name: _function_imports(ast.parse(path.read_text()))
        for name, path in _modules().items()
        if not _is_cli(name)
    }
    hidden = {name: found for name, found in hidden.items() if found}
    assert hidden == {}, (
        "project imports inside library functions (a cycle to break, or an import to move to "
        f"the top): {hidden}"
    )


def test_no_project_module_loads_through_importlib():
    offenders = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("video_eleatt")
            ):
                offenders.append((name, node.lineno, node.args[0].value))
    assert offenders == []


@pytest.mark.parametrize("name", sorted(_modules()))
def test_module_stays_small(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (> {MAX_LINES}): split it at a seam"
