"""``inspect`` checks the input it is given before building (issue 25): sizes below 1 are one line at once,
and an input whose weights would not fit in memory is one line with the estimate, not an OOM after 27 s."""

from __future__ import annotations

from typer.testing import CliRunner

from cnnkeras.cli import app
from cnnkeras.zoo.inspect import check_input_size

runner = CliRunner()


def test_sizes_below_one_are_one_line_before_keras_loads():
    for shape in ("0,0,3", "28,-1,1", "28,28,0"):
        result = runner.invoke(app, ["inspect", "lenet5", "--input", shape])
        assert result.exit_code == 2 and result.output.strip() == (
            f"error: --input takes sizes of at least 1 (H,W,C). Received: input={shape}")


def test_an_input_whose_weights_cannot_fit_is_refused_with_the_estimate():
    result = runner.invoke(app, ["inspect", "lenet5", "--input", "100000,100000,3"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1
    # 16 x 24,997^2 features flattened into a 120-unit dense layer: about 1.2e12 weights
    assert lines[0].startswith("error: model 'lenet5' at 100000x100000x3 would hold about 1,199,8")
    assert "GiB of weights" in lines[0] and "try a smaller --input" in lines[0]


def test_a_model_with_global_pooling_takes_a_large_input_and_the_estimate_is_exact_where_it_can_be_checked():
    check_input_size("resnet18", (1024, 1024, 3), 10)  # global pooling: weights do not grow with the input
    import keras

    from cnnkeras.zoo.inspect import model_for

    estimate_for = {}

    def spy(arch, shape, classes):
        import cnnkeras.zoo.inspect as inspect_module

        original = inspect_module._available_memory
        inspect_module._available_memory = lambda: 1.0  # any estimate is "too large": read it from the message
        try:
            check_input_size(arch, shape, classes)
        except Exception as exc:  # noqa: BLE001 - the message carries the estimate
            estimate_for[shape] = int(str(exc).split("about ")[1].split(" ")[0].replace(",", ""))
        finally:
            inspect_module._available_memory = original

    spy("lenet5", (128, 128, 1), 10)
    built = model_for("lenet5", input_shape=(128, 128, 1), num_classes=10).count_params()
    keras.backend.clear_session()
    assert estimate_for[(128, 128, 1)] == built
