"""The package's import graph: every module imports only its own layer or the layers below.

The order (docs/architecture.md draws it): a module of layer N may import layers 1..N.
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cnnkeras
import cnnkeras.api
import cnnkeras.config

from ..conftest import MNIST

REPO = Path(__file__).resolve().parents[2]

LAYERS = [
    {"errors", "measures", "config", "interrupts", "lazy", "quiet_imports", "version", "backend", "adapters", "process", "outputs"},
    {"data", "layers"},
    {"zoo"},
    {"training"},
    {"tracking"},
    {"runner", "cohort"},
    {"studies"},
    {"analysis", "reporting", "dashboards"},
    {"api", "cli", "__init__"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _modules():
    for path in sorted((REPO / "cnnkeras").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        yield path, parts
    for path in sorted((REPO / "dashboards").rglob("*.py")):  # installed as cnnkeras.dashboards
        yield path, ["cnnkeras", "dashboards", *path.relative_to(REPO / "dashboards").with_suffix("").parts]


def _imports(path: Path, parts: list[str]):
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ""
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_import" and node.args
              and isinstance(node.args[0], ast.Constant)):  # a deferred import is a dependency too
            yield node.lineno, node.args[0].value, ""
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                yield node.lineno, module, alias.name


def _unit(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "cnnkeras" else "__init__"


def test_every_unit_has_a_layer():
    units = {_unit(".".join(parts)) for _, parts in _modules()}
    assert units <= set(RANK), f"add {sorted(units - set(RANK))} to LAYERS (and docs/architecture.md)"


def test_no_module_imports_a_higher_layer_or_the_api():
    wrong = []
    for path, parts in _modules():
        own = _unit(".".join(parts))
        for line, module, name in _imports(path, parts):
            if not module.startswith("cnnkeras"):
                continue
            target = _unit(f"cnnkeras.{name}" if module == "cnnkeras" and name else module)
            if target == "api" and own != "__init__":
                wrong.append(f"{path.relative_to(REPO)}:{line} imports cnnkeras.api")
            elif own != target and RANK[target] > RANK[own]:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {own} (layer {RANK[own] + 1}) imports "
                             f"{module} ({target}, layer {RANK[target] + 1})")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_units_private_names():
    wrong = []
    for path, parts in _modules():
        own = _unit(".".join(parts))
        for line, module, name in _imports(path, parts):
            if module.startswith("cnnkeras") and name.startswith("_") and not name.startswith("__") \
                    and _unit(module) != own:
                wrong.append(f"{path.relative_to(REPO)}:{line}: from {module} import {name}")
    assert not wrong, "\n".join(wrong)


def test_there_is_one_config_loader():
    assert cnnkeras.load_config is cnnkeras.config.load_config is cnnkeras.api.load_config
    assert cnnkeras.config_from_dict is cnnkeras.config.config_from_dict is cnnkeras.api.config_from_dict


def test_the_config_loader_runs_the_zoo_checks(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\nmodel: {arch: resnt18}\n")
    try:
        cnnkeras.config.load_config(path)
    except cnnkeras.ConfigError as exc:
        assert f"{path}:2: model.arch: unknown architecture 'resnt18'; did you mean 'resnet18'?" in str(exc)
    else:
        raise AssertionError("cnnkeras.config.load_config accepted arch: resnt18")


def test_mlflow_and_optuna_each_have_their_own_importers():
    """Only tracking/ talks to MLflow; only studies/ and the ui's server (optuna-dashboard) to Optuna."""
    allowed = {"mlflow": {"tracking"}, "optuna": {"studies", "dashboards"}, "optuna_integration": {"studies"},
               "optuna_dashboard": {"dashboards"}}
    wrong = []
    for path, parts in _modules():
        own = _unit(".".join(parts))
        for line, module, _ in _imports(path, parts):
            root = module.split(".")[0]
            if root in allowed and own not in allowed[root]:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


# Imports that stay inside functions, each for a reason a top-level import cannot meet.
INSIDE_FUNCTIONS = {
    ("cnnkeras/layers/registry.py", "cnnkeras"): "the package registers its layers and imports this registry",
    ("cnnkeras/zoo/registry.py", "cnnkeras.zoo"): "the families register themselves and import this registry",
    ("cnnkeras/studies/storage.py", "fcntl"): "POSIX only",
    ("cnnkeras/adapters/tensorflow_internals.py", "tensorflow.python.framework"): "the TensorFlow backend only",
    ("cnnkeras/training/reproducibility.py", "tensorflow"): "the TensorFlow backend only",
    ("cnnkeras/training/reproducibility.py", "jax"): "the JAX backend only",
    ("cnnkeras/training/reproducibility.py", "torch"): "the PyTorch backend only",
}


def test_imports_sit_at_the_top_and_heavy_ones_go_through_lazy_import():
    """Every dependency is named at the top of its module; heavy ones as ``x = lazy_import("x")``."""
    hidden = []
    for path, parts in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for _, module, _ in _imports_of(node, parts):
                        if (str(path.relative_to(REPO)), module) not in INSIDE_FUNCTIONS:
                            hidden.append(f"{path.relative_to(REPO)}:{node.lineno} imports {module} in "
                                          f"{function.name}()")
    assert not hidden, "\n".join(hidden)


def _imports_of(node, parts):
    package = parts[:-1]
    if isinstance(node, ast.Import):
        return [(node.lineno, alias.name, "") for alias in node.names]
    base = package[: len(package) - (node.level - 1)] if node.level else []
    module = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
    return [(node.lineno, module, alias.name) for alias in node.names]


def test_importing_the_package_and_the_cli_loads_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, cnnkeras, cnnkeras.cli, cnnkeras.api; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'mlflow', 'plotly', 'scipy', 'sklearn', 'pandas') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_validating_a_zoo_config_loads_no_keras_and_declarative_layers_do():
    """``cnnkeras validate`` of a zoo model checks names and options against the registry only
    (issue 17: 8 s, 6.9 of them importing TensorFlow); declarative layers are built once."""
    import subprocess
    import sys

    heavy = "print(sorted(m for m in ('keras', 'tensorflow', 'mlflow', 'optuna') if m in sys.modules))"
    cases = [("experiments/quickstart.yaml", "[]")]
    if MNIST.exists():  # mnist-99 names ../shared/data/mnist.npz, which validate checks exists
        cases.append(("experiments/mnist-99.yaml", "['keras', 'tensorflow']"))
    for config, expected in cases:
        code = f"import sys, cnnkeras; cnnkeras.validate({str(REPO / config)!r}); {heavy}"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected, config


def test_the_cli_quiets_optuna_when_it_is_imported_from_any_command_path():
    """The CLI sets Optuna's verbosity when Optuna is first imported (not before: 0.3 s per
    command); the hook must work whichever cnnkeras module imports Optuna first."""
    import subprocess
    import sys

    for module in ("cnnkeras.reporting.study_report", "cnnkeras.studies.sweep", "cnnkeras.dashboards.server",
                   "optuna"):
        code = ("from cnnkeras.cli import _configure_logging; _configure_logging(); import sys; "
                "assert 'optuna' not in sys.modules; "
                f"import {module}; import optuna; print(optuna.logging.get_verbosity())")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "40", module  # logging.ERROR
