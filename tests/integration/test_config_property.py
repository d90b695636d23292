"""Whatever validates runs (issue 25): configs drawn from the schema, search spaces included.

Each drawn config is either refused by ``validate`` with one line per problem (file or
command line, key path, message), or one tiny step on tiny data (one epoch on a few dozen
of scikit-learn's digits, tracking off) ends without a traceback: trained, or stopped by
one of cnnkeras' own errors in one line. A search space is run as the trials it would
draw: its bounds and choices, each applied to the config.

Sections are drawn from the pydantic models themselves (:func:`from_model`: every field by its
type and bounds, values inside the bounds and just outside them, each Literal's choices and a
wrong one, nested sections and discriminated unions), with the few values that would make a
step slow or need the network (the data source, the architecture, epochs, batch size, image
size) drawn from small lists that still include bad values. The suite runs a fixed seed and ``CNNKERAS_PROPERTY_EXAMPLES`` examples (30);
docs/benchmarks.md records a larger run.
"""

from __future__ import annotations

import os
import textwrap
import types
import typing
from typing import Any

import pytest
from annotated_types import Ge, Gt, Le, Lt
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import cnnkeras
from cnnkeras.config import schema
from cnnkeras.config.schema import Augmentation, ExperimentConfig
from cnnkeras.errors import CnnkerasError
from cnnkeras.studies.objective import trial_config

pytestmark = pytest.mark.slow  # trains a step per valid example

EXAMPLES = int(os.environ.get("CNNKERAS_PROPERTY_EXAMPLES", "30"))


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy, tenths_good: int = 9) -> st.SearchStrategy:
    """``good`` nine times in ten, ``bad`` otherwise: most drawn configs must validate, or the runs are
    never put to the test."""
    return st.integers(0, 9).flatmap(lambda k: good if k < tenths_good else bad)


def _number(annotation: Any, metadata: list[Any]) -> st.SearchStrategy:
    """Numbers within a field's bounds, its bounds themselves, and just outside them."""
    low = next((m.ge for m in metadata if isinstance(m, Ge)), None)
    low = low if low is not None else next((m.gt for m in metadata if isinstance(m, Gt)), None)
    high = next((m.le for m in metadata if isinstance(m, Le)), None)
    high = high if high is not None else next((m.lt for m in metadata if isinstance(m, Lt)), None)
    lo = -10 if low is None else low
    hi = (lo + 100) if high is None else high
    edges = [v for v in (low, high) if v is not None]
    outside = [v for v in ((low - 1) if low is not None else None, (high + 1) if high is not None else None)
               if v is not None]
    if annotation is int:
        inside = st.integers(int(lo), int(min(hi, lo + 512)))
        return mostly(st.one_of(inside, st.sampled_from([int(v) for v in edges] or [0])),
                      st.sampled_from([int(v) for v in outside] or [-1]))
    inside = st.floats(float(lo), float(hi), allow_nan=False, exclude_max=high is not None and any(
        isinstance(m, Lt) for m in metadata))
    return mostly(inside, st.sampled_from([float(v) for v in outside] or [-1.0]))


def _for(annotation: Any, metadata: list[Any]) -> st.SearchStrategy:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _for(args[0], [*metadata, *args[1:]])
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[_for(a, metadata) for a in args])
    if annotation is type(None):
        return st.none()
    if origin is typing.Literal:
        return mostly(st.sampled_from(args), st.just("not-a-choice"))
    if annotation is bool:
        return st.booleans()
    if annotation in (int, float):
        return _number(annotation, metadata)
    if annotation is str:
        return mostly(st.sampled_from(["relu", "tanh", "elu"]), st.sampled_from(["x", ""]))
    if origin is tuple:
        return st.tuples(*[_for(a, metadata) for a in args if a is not Ellipsis])
    if origin in (list, dict) or annotation is Any:
        return st.just(None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return from_model(annotation)
    return st.just(None)


def from_model(model: type[BaseModel]) -> st.SearchStrategy:
    """A config section drawn from a pydantic model: a subset of its fields, each drawn from its type."""
    fields = {name: _for(field.annotation, list(field.metadata)) for name, field in model.model_fields.items()}
    return st.fixed_dictionaries({}, optional=fields).map(  # each field set or left to its default
        lambda d: {k: v for k, v in d.items() if v is not None or model.model_fields[k].default is None})


def _section(name: str) -> st.SearchStrategy:
    return from_model(getattr(schema, name))


LIGHT_ARCHS = ["lenet5", "sequential", "mobilenet", "shufflenet_v2", "nin", "unet", "resnet18", "no_such_net"]
LAYERS = [
    [{"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
     {"type": "max_pool", "pool_size": 2}, {"type": "flatten"}],
    [{"type": "conv2d", "filters": 0, "kernel_size": 3}],
    [{"type": "dense", "units": 8}],
    [{"type": "no_such_layer"}],
]
PATHS = ["train.optimizer.learning_rate", "train.batch_size", "train.l2", "model.dropout", "seed", "train.epochs",
         "data.augmentation.shift", "model.width_multiplier", "train.label_smoothing", "model.activation", "nope.key"]


@st.composite
def raw_configs(draw: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": draw(mostly(st.sampled_from(["h", "prop-1"]), st.sampled_from(["x" * 101, "../up", "a/b"]))),
        "seed": draw(mostly(st.integers(0, 2**32 - 1), st.sampled_from([-1, 2**32, 2**70]))),
        "data": {
            "source": draw(mostly(st.sampled_from(["digits", "digits", "digits", "digit_scenes"]),
                                  st.sampled_from(["npz", "image_folder"]))),
            "subset": draw(mostly(st.sampled_from([None, 60, 200]), st.sampled_from([3, 0, 100000]))),
            "validation_split": draw(mostly(st.sampled_from([0.0, 0.2, 0.5]), st.sampled_from([0.99, 1.0]))),
            "resize": draw(mostly(st.sampled_from([None, [8, 8], [16, 16], [20, 12], [32, 32]]),
                                  st.sampled_from([[0, 4], [100000, 100000]]))),
            "augmentation": draw(_section(Augmentation.__name__)),
        },
        "model": {k: v for k, v in draw(_section("ModelConfig")).items() if k not in ("layers", "input_shape")},
        "train": draw(_section("TrainConfig")),
        "tracking": {"enabled": False},
    }
    raw["model"]["arch"] = draw(mostly(st.sampled_from(LIGHT_ARCHS[:-1]), st.just(LIGHT_ARCHS[-1])))
    if raw["model"]["arch"] == "sequential":
        raw["model"]["layers"] = draw(mostly(st.sampled_from(LAYERS[:1]), st.sampled_from(LAYERS[1:])))
    if raw["data"]["source"] == "digit_scenes":
        raw["data"]["scenes"] = {"count": 40, "size": 24, "digit_size": 8}
    if raw["data"]["source"] in ("npz", "image_folder"):
        raw["data"]["path"] = draw(st.sampled_from(["/nonexistent/data.npz", "/etc", "/etc/hostname"]))
    train = raw["train"]
    train["epochs"] = draw(mostly(st.just(1), st.just(0)))  # one step, or a bad value
    train["batch_size"] = draw(mostly(st.sampled_from([16, 64]), st.sampled_from([0, 10**9])))
    train["steps_per_execution"] = 1
    train.pop("mixed_precision", None)
    if draw(st.booleans()):
        raw["search"] = {"parameters": draw(st.dictionaries(
            st.sampled_from(PATHS), st.one_of(
                st.fixed_dictionaries({"type": st.just("float"), "low": st.floats(-1, 1), "high": st.floats(-1, 2),
                                       "log": st.booleans()}),
                st.fixed_dictionaries({"type": st.just("int"), "low": st.integers(-2, 64),
                                       "high": st.integers(-2, 128)}),
                st.fixed_dictionaries({"type": st.just("categorical"), "choices": st.lists(
                    st.one_of(st.integers(0, 64), st.floats(0, 1), st.sampled_from(["relu", "tanh", "bad"])),
                    min_size=1, max_size=3)})),
            min_size=1, max_size=3))}
    return raw


def _one_line_each(message: str) -> None:
    """A ConfigError: one line per problem, each naming where (no traceback, no Python repr dumps)."""
    assert "Traceback" not in message
    for line in message.splitlines():
        assert line.strip() and len(line) < 600, line


def _tiny(config: ExperimentConfig) -> ExperimentConfig:
    """The same config on a few dozen digits, one epoch: what matters is whether it runs."""
    raw = config.to_dict()
    raw.pop("search", None)
    raw["tracking"] = {"enabled": False}
    if raw["data"]["source"] == "digits":
        raw["data"]["subset"] = min(raw["data"].get("subset") or 60, 60)
    raw["train"]["epochs"] = 1
    return cnnkeras.config_from_dict(raw)


def _step(config: ExperimentConfig) -> None:
    try:
        cnnkeras.run(_tiny(config), progress=False)
        event("the step trained")
    except CnnkerasError as exc:
        assert "\n" not in str(exc).strip() and "Traceback" not in str(exc), str(exc)
        event(f"the step stopped in one line: {type(exc).__name__}: {str(exc)[:90]}")


@seed(20261206)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
@given(raw=raw_configs(), pick=st.randoms(use_true_random=False))
def test_whatever_validates_runs_one_tiny_step_or_is_refused_in_one_line_per_problem(raw, pick, tmp_path_factory):
    path = tmp_path_factory.mktemp("prop") / "exp.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        config = cnnkeras.load_config(path)
    except cnnkeras.ConfigError as exc:
        _one_line_each(str(exc))
        event("refused by validate")
        return
    event("validated: tiny step run")
    if config.search is None:
        _step(config)
        return
    for key, param in config.search.parameters.items():  # each bound or choice, as a trial would draw it
        values = list(param.choices) if param.type == "categorical" else [param.low, param.high]
        value = pick.choice(values)
        try:
            trial = trial_config(config, [f"{key}={value!r}".replace("'", '"') if isinstance(value, str)
                                          else f"{key}={value}"], number=0)
        except cnnkeras.ConfigError as exc:
            pytest.fail(f"validate accepted the search space, but its value {key}={value!r} is refused: {exc}")
        _step(trial)


def test_a_few_known_members_of_the_class_are_refused_before_anything_runs(tmp_path):
    """Issue 25's examples, each a member of a class the property test draws from."""
    cases = {
        "seed: 99999999999999999999": "seed",
        "model: {head: regression}\ntrain: {monitor: val_accuracy}": "train.monitor",
        "train: {early_stopping: {monitor: val_mae}}": "train.early_stopping.monitor",
        "model: {head: regression}\nsearch: {parameters: {seed: {type: int, low: 0, high: 3}}}":
            "search.objectives[0].metric",
        "data: {source: npz, path: /nonexistent/mnist.npz}": "data.path",
        "name: ../../etc/cron.d/x": "name",
    }
    for body, key in cases.items():
        path = tmp_path / "case.yaml"
        path.write_text(textwrap.dedent("name: case\n") + body + "\n" if not body.startswith("name:") else body + "\n")
        with pytest.raises(cnnkeras.ConfigError) as caught:
            cnnkeras.load_config(path)
        assert key in str(caught.value), (body, str(caught.value))
