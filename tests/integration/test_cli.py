"""The CLI is a thin layer: exit codes, printed errors, results and the config schema."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cnnkeras.cli import app

runner = CliRunner()


def test_validate_prints_every_error_and_exits_2(write_config):
    path = write_config("name: a\ntrain: {batch_size: 0, optimiser: {}}\n")
    result = runner.invoke(app, ["validate", str(path), "data.validation_split=1.5"])
    assert result.exit_code == 2
    assert f"{path}:2: train.batch_size: input should be greater than 0 (got 0)" in result.output
    assert f"{path}:2: train.optimiser: unknown key; did you mean 'optimizer'?" in result.output
    assert "command line 'data.validation_split=1.5'" in result.output


def test_validate_prints_the_resolved_config(write_config):
    result = runner.invoke(app, ["validate", str(write_config("name: a\n")), "train.epochs=4"])
    assert result.exit_code == 0
    assert "epochs: 4" in result.output and "learning_rate: 0.001" in result.output


def test_schema_is_json():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "ExperimentConfig"


def test_run_prints_results_and_where_to_look(tiny_config, tracking_uri):
    result = runner.invoke(app, ["run", str(tiny_config), "train.epochs=2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "test_accuracy" in result.output and "cnnkeras ui" in result.output
    assert "cnnkeras reproduce" in result.output


def test_zoo_and_inspect_fit_80_columns_without_cutting_numbers():
    import re

    zoo = runner.invoke(app, ["zoo"], env={"COLUMNS": "80"})
    inspect = runner.invoke(app, ["inspect", "resnet18", "--input", "32,32,3"], env={"COLUMNS": "80"})
    for result in (zoo, inspect):
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in result.output.splitlines()) <= 80
        assert not re.search(r"\b(None|nan)\b", result.output)
    # issue 26: papers cited whole ("Lin et al. 2017"), the smallest input each model takes
    assert re.search(r"vgg16 +cls +1x1 +138\.36M +15\.47G +Simonyan and Zisserman 2015", zoo.output)
    assert re.search(r"fpn_resnet18 +both +1x1 .* Lin et al\. 2017", zoo.output)
    assert re.search(r"xception +cls +71x71 ", zoo.output) and re.search(r"mobilenet_v2 +cls +32x32 ", zoo.output)
    wide = runner.invoke(app, ["zoo"], env={"COLUMNS": "200"})  # room for the input and the reference count
    assert re.search(r"vgg16 +cls +224x224x3 +1x1 +138\.36M +15\.47G +same +Simonyan and Zisserman 2015", wide.output)
    assert re.search(r"unet +seg +572x572x1 ", wide.output) and max(len(line) for line in wide.output.splitlines()) <= 200
    assert re.search(r"total +11,\d{3},\d{3} ", inspect.output)  # whole, with thousands separators


def test_an_unknown_architecture_is_one_line_with_the_nearest_name_and_exit_2():
    result = runner.invoke(app, ["inspect", "resnt18"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: unknown architecture 'resnt18'; did you mean 'resnet18'?"


def test_inspect_with_an_input_too_small_for_the_model_is_one_line_and_exit_2():
    result = runner.invoke(app, ["inspect", "lenet5", "--input", "8,8,1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model 'lenet5' cannot take input shape (8, 8, 1)")
    assert "a larger --input (at least 12x12)" in lines[0]


def test_inspect_keeps_every_layer_name_distinct_at_80_columns():
    import re

    """Issue 26: `cnnkeras inspect resnet50 | cat` cut layer names, so 172 of 183 rows looked alike."""
    result = runner.invoke(app, ["inspect", "resnet50"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    rows = [line for line in lines[rule + 1:] if line.strip() and not line.startswith(("total", "RF:"))]
    names = [line.split()[0] for line in rows]
    assert len(rows) > 170 and len(set(names)) == len(names)
    assert any("BatchNorm" in line for line in rows)  # layer types spelled short, not cut
    wide = runner.invoke(app, ["inspect", "resnet50"], env={"COLUMNS": "200"})
    assert re.search(r"stage2_block1_conv1_bn +BatchNormalization ", wide.output)  # whole where there is room
