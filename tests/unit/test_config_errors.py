"""Config mistakes are reported before anything runs, with file:line, key path and a suggestion."""

from __future__ import annotations

import pytest

import cnnkeras
from cnnkeras.config import ConfigError


def errors_of(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        cnnkeras.load_config(path, list(overrides))
    return [str(issue) for issue in info.value.issues]


def test_unknown_key_names_file_line_path_and_nearest_key(write_config):
    path = write_config("""
        name: demo
        train:
          epochs: 2
          optimiser: {name: adam}
        """)
    assert errors_of(path) == [f"{path}:4: train.optimiser: unknown key; did you mean 'optimizer'?"]


def test_every_error_is_reported_at_once(write_config):
    path = write_config("""
        name: demo
        data:
          validation_split: 1.5
        train:
          batch_size: 0
          optimizer: {name: adam, learning_rate: -0.1}
        """)
    assert errors_of(path) == [
        f"{path}:3: data.validation_split: input should be less than 1 (got 1.5)",
        f"{path}:5: train.batch_size: input should be greater than 0 (got 0)",
        f"{path}:6: train.optimizer.learning_rate: input should be greater than 0 (got -0.1)",
    ]


def test_wrong_type(write_config):
    path = write_config("name: demo\ntrain: {epochs: many}\n")
    assert errors_of(path) == [
        f"{path}:2: train.epochs: input should be a valid integer, unable to parse string as an integer (got 'many')"
    ]


def test_unknown_optimizer_and_schedule_suggest_the_nearest(write_config):
    path = write_config("""
        name: demo
        train:
          optimizer:
            name: adamm
          schedule: {name: cosin}
        """)
    assert errors_of(path) == [
        f"{path}:4: train.optimizer.name: unknown optimizer 'adamm'; did you mean 'adam'?",
        f"{path}:5: train.schedule.name: unknown schedule 'cosin'; did you mean 'cosine'?",
    ]


def test_unknown_key_inside_a_union_member(write_config):
    path = write_config("name: demo\ntrain:\n  optimizer: {name: sgd, momentun: 0.9}\n")
    assert errors_of(path) == [f"{path}:3: train.optimizer.momentun: unknown key; did you mean 'momentum'?"]


def test_unknown_architecture(write_config):
    path = write_config("name: demo\nmodel:\n  arch: lenet\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:3: model.arch: unknown architecture 'lenet'; did you mean 'lenet5'?")


def test_option_the_architecture_does_not_take(write_config):
    path = write_config("name: demo\nmodel:\n  arch: lenet5\n  small_input: true\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:4: model.small_input: arch 'lenet5' takes no option 'small_input'")


def test_literal_value_suggests(write_config):
    path = write_config("name: demo\ndata: {source: digitz}\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:2: data.source: 'digitz' is not allowed; did you mean 'digits'?")


def test_cross_field_rules(write_config):
    path = write_config("""
        name: demo
        data: {source: npz}
        model: {head: binary}
        train: {label_smoothing: 0.1}
        """)
    assert errors_of(path) == [
        f"{path}:2: data.path: source 'npz' needs a path",
        f"{path}:4: train: label_smoothing needs model.head multiclass (head is 'binary')",
    ]


def test_missing_required_name(write_config):
    path = write_config("seed: 1\n")
    assert errors_of(path) == [f"{path}: name: required key is missing"]


def test_override_errors_name_the_override(write_config):
    path = write_config("name: demo\n")
    assert errors_of(path, ["train.batch_size=0", "train.optimizer.lerning_rate=1e-3"]) == [
        "command line 'train.batch_size=0': train.batch_size: input should be greater than 0 (got 0)",
        "command line 'train.optimizer.lerning_rate=1e-3': train.optimizer.lerning_rate: unknown key; "
        "did you mean 'learning_rate'?",
    ]


def test_malformed_override(write_config):
    path = write_config("name: demo\n")
    assert errors_of(path, ["train.batch_size"]) == [
        "command line: (top level): override 'train.batch_size' must look like key.path=value"
    ]


def test_python_tags_are_refused(write_config):
    path = write_config("name: !!python/object/apply:os.system ['echo pwned']\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:1: (top level): YAML tag")
    assert "not allowed" in message


def test_duplicate_keys_are_refused(write_config):
    path = write_config("name: a\ntrain: {epochs: 1}\ntrain: {epochs: 2}\n")
    assert errors_of(path) == [f"{path}:3: train: duplicate key (each key may appear once)"]


def test_invalid_yaml_has_a_line(write_config):
    path = write_config("name: a\ntrain: {epochs: 1\n")
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:3: (top level): invalid YAML")


def test_missing_file():
    assert errors_of("nope.yaml") == ["nope.yaml: (top level): config file not found"]


def test_declarative_layer_errors_point_at_the_layer(write_config):
    path = write_config("""
        name: demo
        model:
          arch: sequential
          layers:
            - {type: conv2d, filtres: 8, kernel_size: 3}
            - {type: maxpool}
            - {repeat: 0, layers: [{type: flatten}]}
        """)
    assert errors_of(path) == [
        f"{path}:5: model.layers[0].filtres: Conv2D takes no argument 'filtres'; did you mean 'filters'?",
        f"{path}:6: model.layers[1].type: unknown layer type 'maxpool'; did you mean 'max_pool'?",
        f"{path}:7: model.layers[2].repeat: must be a positive integer (got 0)",
    ]


def test_extends_and_overrides_merge_in_order(write_config, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.npz").write_bytes(b"")  # validate checks that the data file exists
    write_config("name: base\ntrain: {epochs: 5, batch_size: 16}\ndata: {source: npz, path: data/x.npz}\n",
                 name="base.yaml")
    path = write_config("extends: base.yaml\nname: child\ntrain: {epochs: 2}\n")
    config = cnnkeras.load_config(path, ["train.optimizer.learning_rate=3e-4"])
    assert (config.name, config.train.epochs, config.train.batch_size) == ("child", 2, 16)
    assert config.train.optimizer.learning_rate == pytest.approx(3e-4)
    assert config.data.path == str(tmp_path / "data" / "x.npz")  # relative to the file that set it


def test_errors_in_a_base_file_name_the_base_file(write_config):
    base = write_config("name: base\ntrain:\n  epocs: 5\n", name="base.yaml")
    path = write_config("extends: base.yaml\nname: child\n")
    assert errors_of(path) == [f"{base}:3: train.epocs: unknown key; did you mean 'epochs'?"]


def test_yaml_12_floats_are_floats(write_config):
    path = write_config("name: a\ntrain:\n  optimizer: {learning_rate: 1e-3}\n  l2: 5e-4\n")
    config = cnnkeras.load_config(path)
    assert config.train.optimizer.learning_rate == 1e-3 and config.train.l2 == 5e-4


def test_config_is_immutable(write_config):
    config = cnnkeras.load_config(write_config("name: a\n"))
    with pytest.raises(Exception):
        config.seed = 3  # type: ignore[misc]


def test_schema_and_reference_docs_are_current():
    from pathlib import Path

    from cnnkeras.config.docs import schema_markdown

    schema = cnnkeras.schema()
    assert set(schema["properties"]) >= {"name", "seed", "data", "model", "train", "tracking"}
    docs = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert docs.read_text(encoding="utf-8") == schema_markdown(), "run: cnnkeras schema --markdown > docs/configuration.md"


def test_what_validates_can_run_no_infinities_booleans_for_numbers_or_absurd_epochs(write_config):
    """Found by a hostile but honest user: each of these validated, then failed or ran forever."""
    import cnnkeras

    path = write_config("""
        name: bad
        train: {epochs: 1.0e+12, batch_size: true, optimizer: {name: adam, learning_rate: .inf}}
        search:
          parameters:
            train.l2: {type: float, low: 1.0e-6, high: .inf}
            train.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true, step: 0.01}
        """)
    with pytest.raises(cnnkeras.ConfigError) as info:
        cnnkeras.validate(path)
    text = str(info.value)
    assert f"{path}:2: train.epochs: input should be less than or equal to 100000" in text
    assert f"{path}:2: train.batch_size: input should be a valid integer" in text and "(a boolean)" in text
    assert f"{path}:2: train.optimizer.learning_rate: input should be a finite number (got inf)" in text
    assert f"{path}:5: search.parameters.train.l2.high: input should be a finite number (got inf)" in text
    assert f"{path}:6: search.parameters.train.optimizer.learning_rate.step: a step cannot be combined" in text
    assert len(info.value.issues) == 5  # every problem at once
    assert cnnkeras.validate(write_config("name: ok\ntrain: {shuffle: true}\n", name="ok.yaml")).train.shuffle


def test_sweep_counts_below_one_are_refused_not_reinterpreted(write_config):
    from typer.testing import CliRunner

    from cnnkeras.cli import app

    path = write_config("name: s\n")
    for option in ("--trials", "--jobs"):
        for value in ("0", "-1"):
            result = CliRunner().invoke(app, ["sweep", str(path), option, value])
            text = " ".join(result.output.replace("│", " ").split())  # Rich boxes and wraps the message
            assert result.exit_code == 2 and "greater than or equal to 1" in text, (option, value)


def test_a_validation_monitor_without_validation_data_is_refused(write_config):
    import cnnkeras

    path = write_config("""
        name: nval
        data: {validation_split: 0}
        train: {early_stopping: {monitor: val_loss, patience: 2}}
        """)
    with pytest.raises(cnnkeras.ConfigError, match=r"train: early_stopping.monitor val_loss needs validation "
                                                   r"data, and data.validation_split is 0: monitor loss"):
        cnnkeras.validate(path)
    assert cnnkeras.validate(path, ["train.early_stopping.monitor=loss"]).train.early_stopping.monitor == "loss"


def test_an_alias_bomb_and_a_non_utf8_file_are_refused_in_one_line(tmp_path):
    import time

    import cnnkeras

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines + ["name: bomb"]) + "\n")
    started = time.perf_counter()
    with pytest.raises(cnnkeras.ConfigError, match="expands to more than 100,000 values"):
        cnnkeras.validate(bomb)
    assert time.perf_counter() - started < 30  # it used to grow past 1.8 GB and never end
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(cnnkeras.ConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 9\)"):
        cnnkeras.validate(latin1)
