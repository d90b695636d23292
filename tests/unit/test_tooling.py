"""The repository's tooling, run by the test command CI runs (issue 24): ruff and mypy are clean, and
every package the code imports is declared in pyproject.toml."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("cnnkeras", "dashboards")


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.fail(f"{name} is not installed in this environment: pip install -e '.[dev]'")
    return str(path)


def test_ruff_is_clean():
    """The rule set is in pyproject.toml ([tool.ruff.lint]): pycodestyle, pyflakes, bugbear, pyupgrade, isort."""
    done = subprocess.run([_tool("ruff"), "check", "--output-format", "concise", "."], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_is_clean_over_the_package_and_the_dashboards():
    done = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def _imported_top_level_names() -> dict[str, str]:
    """Every absolute import's top-level name in cnnkeras/ and dashboards/, with one file that imports it."""
    found: dict[str, str] = {}
    for folder in SCANNED:
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_import" and node.args
                      and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                    names = [node.args[0].value]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"]) + [s for extra in project["optional-dependencies"].values() for s in extra]
    return {re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}


def test_every_imported_package_is_declared():
    """numpy, sqlalchemy, requests... are imported directly, so they are declared, not left to a dependency's
    dependencies (an import of a package that only arrives through another one breaks when that one changes)."""
    stdlib = set(sys.stdlib_module_names)
    owners = importlib.metadata.packages_distributions()
    declared = _declared()
    own = {"cnnkeras", "dashboards"}
    missing = {}
    for name, where in _imported_top_level_names().items():
        if name in stdlib or name in own or name.startswith("_"):
            continue
        distributions = {d.lower().replace("_", "-") for d in owners.get(name, [])}
        if not distributions:  # an optional backend that is not installed here (torch): declared under its name
            if name.lower() not in declared:
                missing[name] = f"{where} (not installed)"
        elif not distributions & declared:
            missing[name] = f"{where} (from {', '.join(sorted(distributions))})"
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
