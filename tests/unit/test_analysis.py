"""Conv arithmetic: output sizes, receptive fields and MACs against the notes' formulas."""

from __future__ import annotations

import keras
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnkeras
from cnnkeras.zoo.inspect import inspect


@settings(max_examples=60, deadline=None)
@given(w=st.integers(5, 40), f=st.integers(1, 7), p=st.integers(0, 3), s=st.integers(1, 4))
def test_output_size_is_floor_w_minus_f_plus_2p_over_s_plus_1(w, f, p, s):
    if w + 2 * p < f:
        return
    inputs = keras.Input((w, w, 1))
    x = keras.layers.ZeroPadding2D(p)(inputs)
    x = keras.layers.Conv2D(2, f, strides=s)(x)
    frame = inspect(keras.Model(inputs, x))
    assert frame["output_shape"].iloc[-1][:2] == ((w - f + 2 * p) // s + 1,) * 2


def _top_down(stack):
    """The notes' recursion RF(i) = S(i) (RF(i+1) - 1) + K(i), from the last layer down (K dilated)."""
    rf = 1
    for k, s, d in reversed(stack):
        rf = s * (rf - 1) + d * (k - 1) + 1
    return rf


@settings(max_examples=40, deadline=None)
@given(stack=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 2), st.integers(1, 3)), min_size=1, max_size=5))
def test_receptive_field_matches_the_top_down_recursion(stack):
    inputs = keras.Input((256, 256, 1))
    x = inputs
    for k, s, d in stack:
        x = keras.layers.Conv2D(1, k, strides=s, dilation_rate=d if s == 1 else 1, padding="same")(x)
    stack = [(k, s, d if s == 1 else 1) for k, s, d in stack]
    frame = inspect(keras.Model(inputs, x))
    assert frame["rf"].iloc[-1] == _top_down(stack)


def test_dilated_stack_of_the_notes_gives_3_7_15():
    inputs = keras.Input((32, 32, 1))
    x = inputs
    for d in (1, 2, 4):
        x = keras.layers.Conv2D(1, 3, dilation_rate=d, padding="same")(x)
    assert list(inspect(keras.Model(inputs, x))["receptive_field"])[1:] == ["3", "7", "15"]


def test_macs_of_a_3x3_conv_against_its_depthwise_separable_version():
    inputs = keras.Input((7, 7, 3))
    standard = inspect(keras.Model(inputs, keras.layers.Conv2D(128, 3)(inputs)))
    separable = inspect(keras.Model(inputs, keras.layers.SeparableConv2D(128, 3)(inputs)))
    assert standard.attrs["macs"] == 86_400
    assert separable.attrs["macs"] == 10_275


def test_inspect_lenet5_by_name():
    frame = cnnkeras.inspect("lenet5")
    rows = frame.set_index("layer")
    assert frame.attrs["params"] == 61_706 and frame.attrs["macs"] == 416_520
    assert rows.loc["c1", "macs"] == 28 * 28 * 6 * 25 and rows.loc["c3", "receptive_field"] == "14"  # 5, pool -> 6 (jump 2), 6 + 4*2
    assert rows.loc["s4", "stride"] == "4" and rows.loc["f5", "receptive_field"] == "global"


def test_inspect_a_config_uses_its_data(write_config):
    frame = cnnkeras.inspect(write_config("name: a\ndata: {source: digits, resize: [28, 28]}\n"))
    assert frame.attrs["input_shape"] == (28, 28, 1)


def test_resnet18_receptive_field_is_435():
    frame = cnnkeras.inspect("resnet18")
    assert frame.set_index("layer").loc["stage5_block2_out", "receptive_field"] == "435"


@pytest.mark.parametrize("shape", [(32, 32, 3)])
def test_zoo_table_lists_every_architecture(shape):
    frame = cnnkeras.zoo_table(input_shape=shape, num_classes=10)
    assert set(frame["arch"]) == set(cnnkeras.list_models())
    too_small = frame["arch"] == "xception"  # its smallest input is 71x71
    assert frame.loc[too_small, "note"].str.startswith("cannot take (32, 32, 3)").all()
    assert frame.loc[~too_small, "params"].notna().all() and (frame.loc[~too_small, "macs"] > 0).all()
