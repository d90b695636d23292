"""Custom layers against independent NumPy/SciPy references, errors, and .keras round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from cnnkeras import layers as L

NUMPY_MODE = {"zero": "constant", "constant": "constant", "reflect": "reflect", "symmetric": "symmetric",
              "replicate": "edge", "wrap": "wrap"}


def np_(x):
    return keras.ops.convert_to_numpy(x)


@settings(max_examples=40, deadline=None)
@given(mode=st.sampled_from(sorted(NUMPY_MODE)), h=st.integers(3, 9), w=st.integers(3, 9),
       pads=st.tuples(*[st.integers(0, 2)] * 4), seed=st.integers(0, 100))
def test_padding_modes_match_numpy_pad(mode, h, w, pads, seed):
    x = np.random.default_rng(seed).random((2, h, w, 3)).astype("float32")
    top, bottom, left, right = pads
    layer = L.Padding2D(((top, bottom), (left, right)), mode=mode, constant_value=1.5)
    kwargs = {"constant_values": 1.5 if mode == "constant" else 0.0} if NUMPY_MODE[mode] == "constant" else {}
    expected = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode=NUMPY_MODE[mode], **kwargs)
    np.testing.assert_allclose(np_(layer(x)), expected, rtol=0, atol=0)
    assert layer.compute_output_shape(x.shape) == expected.shape


@pytest.mark.parametrize("mode, expected", [
    # the notes' pictures for a row a b c d = 1 2 3 4, three pixels each side
    ("reflect", [4, 3, 2, 1, 2, 3, 4, 3, 2, 1]),
    ("symmetric", [3, 2, 1, 1, 2, 3, 4, 4, 3, 2]),
    ("replicate", [1, 1, 1, 1, 2, 3, 4, 4, 4, 4]),
    ("wrap", [2, 3, 4, 1, 2, 3, 4, 1, 2, 3]),
    ("zero", [0, 0, 0, 1, 2, 3, 4, 0, 0, 0]),
])
def test_padding_modes_match_the_notes_by_hand(mode, expected):
    row = np.arange(1.0, 5.0, dtype="float32").reshape(1, 1, 4, 1)
    out = np_(L.Padding2D(((0, 0), (3, 3)), mode=mode)(row))
    assert out.reshape(-1).tolist() == expected


@pytest.mark.parametrize("mode", sorted(NUMPY_MODE))
def test_padding_with_a_dynamic_height_and_width_matches_numpy_pad(mode):
    """Unknown height/width at build time take the ops.pad / concatenation path."""
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, L.Padding2D(((2, 1), (0, 2)), mode=mode, constant_value=1.5)(inputs))
    for h, w in ((5, 4), (7, 9)):
        x = np.random.default_rng(h).random((2, h, w, 3)).astype("float32")
        kwargs = {"constant_values": 1.5 if mode == "constant" else 0.0} if NUMPY_MODE[mode] == "constant" else {}
        expected = np.pad(x, ((0, 0), (2, 1), (0, 2), (0, 0)), mode=NUMPY_MODE[mode], **kwargs)
        np.testing.assert_array_equal(np_(model.predict_on_batch(x)), expected)


def _correlate(x, kernel, dilation=1):
    """SciPy reference for a 'valid' multi-channel conv (Keras convs are correlations)."""
    kh, kw, cin, cout = kernel.shape
    dk = np.zeros(((kh - 1) * dilation + 1, (kw - 1) * dilation + 1, cin, cout), kernel.dtype)
    dk[::dilation, ::dilation] = kernel
    out = []
    for n in range(x.shape[0]):
        out.append(np.stack([sum(signal.correlate2d(x[n, :, :, c], dk[:, :, c, o], mode="valid") for c in range(cin))
                             for o in range(cout)], axis=-1))
    return np.stack(out)


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_conv_and_dilated_conv_match_scipy(dilation):
    rng = np.random.default_rng(dilation)
    x = rng.random((2, 11, 10, 3)).astype("float32")
    conv = keras.layers.Conv2D(4, 3, dilation_rate=dilation, use_bias=False)
    conv.build(x.shape)
    kernel = rng.random((3, 3, 3, 4)).astype("float32")
    conv.set_weights([kernel])
    np.testing.assert_allclose(np_(conv(x)), _correlate(x, kernel, dilation), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "wrap", "zero"])
def test_padded_conv_equals_numpy_pad_then_valid_conv(mode):
    rng = np.random.default_rng(0)
    x = rng.random((1, 6, 7, 2)).astype("float32")
    layer = L.PaddedConv2D(3, 3, padding_mode=mode, use_bias=False)
    layer.build(x.shape)
    kernel = rng.random((3, 3, 2, 3)).astype("float32")
    layer.set_weights([kernel])
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=NUMPY_MODE[mode])
    out = np_(layer(x))
    assert out.shape == (1, 6, 7, 3)
    np.testing.assert_allclose(out, _correlate(padded, kernel), rtol=1e-5, atol=1e-5)


def test_spatially_separable_sobel_equals_the_full_kernel():
    x = np.random.default_rng(1).random((1, 9, 9, 1)).astype("float32")
    layer = L.SpatiallySeparableConv2D(1, 3, use_bias=False)
    layer.build(x.shape)
    layer.set_weights([np.array([1, 2, 1], "float32").reshape(3, 1, 1, 1),
                       np.array([-1, 0, 1], "float32").reshape(1, 3, 1, 1)])
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "float32")
    expected = signal.correlate2d(x[0, :, :, 0], sobel, mode="valid")
    np.testing.assert_allclose(np_(layer(x))[0, :, :, 0], expected, rtol=1e-5, atol=1e-5)
    assert layer.count_params() == 3 + 3  # 2k weights instead of k^2 = 9


def test_adaptive_pooling_by_hand():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    avg = np_(keras.layers.AdaptiveAveragePooling2D((2, 2))(x))[0, :, :, 0]
    mx = np_(keras.layers.AdaptiveMaxPooling2D((2, 2))(x))[0, :, :, 0]
    np.testing.assert_array_equal(avg, [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(mx, [[5, 7], [13, 15]])


def test_spatial_pyramid_pooling_by_hand():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    out = np_(L.SpatialPyramidPooling2D((1, 2), mode="max")(x))
    np.testing.assert_array_equal(out, [[15, 5, 7, 13, 15]])
    assert L.SpatialPyramidPooling2D((1, 2, 4))(np.ones((3, 13, 9, 5), "float32")).shape == (3, 5 * 21)


def test_max_unpooling_puts_maxima_back_by_hand():
    x = np.array([[1, 2, 0, 0], [3, 0, 0, 9], [0, 0, 4, 0], [7, 0, 0, 0]], "float32").reshape(1, 4, 4, 1)
    pooled, where = L.MaxPoolingWithArgmax2D(2)(x)
    np.testing.assert_array_equal(np_(pooled)[0, :, :, 0], [[3, 9], [7, 4]])
    np.testing.assert_array_equal(np_(where)[0, :, :, 0], [[2, 3], [2, 0]])
    restored = np_(L.MaxUnpooling2D(2)([pooled, where]))[0, :, :, 0]
    np.testing.assert_array_equal(restored, [[0, 0, 0, 0], [3, 0, 0, 9], [0, 0, 4, 0], [7, 0, 0, 0]])


@pytest.mark.parametrize("p", [2, 3])
def test_argmax_pooling_matches_numpy_with_ties_first_index_wins(p):
    rng = np.random.default_rng(p)
    x = rng.integers(0, 3, size=(2, 4 * p, 2 * p, 3)).astype("float32")  # small integers: many ties
    windows = x.reshape(2, 4, p, 2, p, 3).transpose(0, 1, 3, 5, 2, 4).reshape(2, 4, 2, 3, p * p)
    pooled, where = L.MaxPoolingWithArgmax2D(p)(x)
    np.testing.assert_array_equal(np_(pooled), windows.max(-1))
    np.testing.assert_array_equal(np_(where), windows.argmax(-1))  # numpy: first index on ties


def _gradient(fn, x):
    """d sum(fn(x)) / dx on the running backend (TensorFlow or JAX)."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(lambda t: keras.ops.sum(fn(t)))(x))
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(fn(x))
    return tape.gradient(total, x).numpy()


@pytest.mark.parametrize("p", [2, 3])
def test_argmax_pooling_gradient_reaches_exactly_the_argmax_even_on_ties(p):
    rng = np.random.default_rng(10 + p)
    x = rng.integers(0, 2, size=(2, 2 * p, 3 * p, 2)).astype("float32")  # 0/1: most windows tie
    weights = rng.random((2, 2, 3, 2)).astype("float32")
    layer = L.MaxPoolingWithArgmax2D(p)
    grad = _gradient(lambda t: layer(t)[0] * weights, x)
    where = np_(layer(x)[1])
    np.testing.assert_allclose(grad, np_(L.MaxUnpooling2D(p)([weights, where])), rtol=0, atol=0)
    assert np.count_nonzero(grad) == weights.size  # one position per window, never split


def test_argmax_pooling_passes_nans_on_and_points_inside_the_window():
    x = np.array([[1, np.nan, 0, 5], [2, 0, np.nan, np.nan], [np.nan, 4, 7, 7], [3, 4, 6, 8]],
                 "float32").reshape(1, 4, 4, 1)
    pooled, where = (np_(t)[0, :, :, 0] for t in L.MaxPoolingWithArgmax2D(2)(x))
    np.testing.assert_array_equal(pooled, [[np.nan, np.nan], [np.nan, 8]])  # NaN-aware equality
    assert where[1, 1] == 3 and ((0 <= where) & (where < 4)).all()


def test_argmax_pooling_of_size_one_is_the_identity():
    x = np.random.default_rng(3).random((2, 3, 5, 4)).astype("float32")
    pooled, where = L.MaxPoolingWithArgmax2D(1)(x)
    np.testing.assert_array_equal(np_(pooled), x)
    np.testing.assert_array_equal(np_(where), np.zeros(x.shape, "int32"))


def test_argmax_pooling_and_unpooling_take_any_height_and_width():
    inputs = keras.Input((None, None, 3))
    pooled, where = L.MaxPoolingWithArgmax2D(2)(inputs)
    model = keras.Model(inputs, [pooled, where, L.MaxUnpooling2D(2)([pooled, where])])
    for shape in [(2, 4, 6, 3), (1, 8, 2, 3)]:
        x = np.random.default_rng(sum(shape)).random(shape).astype("float32")
        got_pooled, got_where, restored = (np_(t) for t in model.predict_on_batch(x))
        assert got_pooled.shape == got_where.shape == (shape[0], shape[1] // 2, shape[2] // 2, 3)
        np.testing.assert_array_equal(restored, np.where(restored != 0, x, 0))  # maxima back in place
        np.testing.assert_array_equal(np.count_nonzero(restored), got_pooled.size)


def test_mixed_pooling_interpolates_max_and_average():
    x = np.random.default_rng(2).random((2, 6, 6, 3)).astype("float32")
    mx = np_(keras.layers.MaxPooling2D(2)(x))
    avg = np_(keras.layers.AveragePooling2D(2)(x))
    np.testing.assert_allclose(np_(L.MixedPooling2D(2, alpha=1.0)(x)), mx, rtol=1e-6)
    np.testing.assert_allclose(np_(L.MixedPooling2D(2, alpha=0.0)(x)), avg, rtol=1e-6)
    np.testing.assert_allclose(np_(L.MixedPooling2D(2, alpha=0.3)(x)), 0.3 * mx + 0.7 * avg, rtol=1e-5)
    learned = L.MixedPooling2D(2, alpha=0.3, learnable=True)
    learned(x)
    assert len(learned.trainable_weights) == 1


def test_upsample_nearest_repeats_and_all_interpolations_run():
    x = np.random.default_rng(3).random((1, 3, 4, 2)).astype("float32")
    np.testing.assert_array_equal(np_(L.Upsample2D(2, "nearest")(x)), x.repeat(2, axis=1).repeat(2, axis=2))
    for method in ("bilinear", "bicubic", "lanczos3", "lanczos5"):
        assert L.Upsample2D((2, 3), method)(x).shape == (1, 6, 12, 2)


@pytest.mark.parametrize("r,beta", [(2, 0.75), (0, 0.5), (9, 0.6)])  # r = 9 > 7 channels: all of them
def test_local_response_normalization_matches_the_formula(r, beta):
    x = np.random.default_rng(4).random((1, 2, 2, 7)).astype("float32") * 10
    k, alpha = 2.0, 1e-2
    expected = np.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - r), min(7, c + r + 1)
        expected[..., c] = x[..., c] / (k + alpha * (x[..., lo:hi] ** 2).sum(-1)) ** beta
    out = np_(L.LocalResponseNormalization(r, k, alpha, beta)(x))
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    if keras.backend.backend() == "tensorflow":  # and TensorFlow's own kernel
        import tensorflow as tf

        reference = tf.nn.local_response_normalization(x, r, k, alpha, beta).numpy()
        np.testing.assert_allclose(out, reference, rtol=1e-5)


@pytest.mark.parametrize("make,message", [
    (lambda: L.Padding2D(1, mode="mirror"), "Received: mode=mirror"),
    (lambda: L.Padding2D(-1), "Received: padding=-1"),
    (lambda: L.PaddedConv2D(4, 3, padding_mode="edge"), "Received: padding_mode=edge"),
    (lambda: L.SpatiallySeparableConv2D(0, 3), "Received: filters=0"),
    (lambda: L.MixedPooling2D(2, alpha=1.5), "Received: alpha=1.5"),
    (lambda: L.SpatialPyramidPooling2D((1, 0)), "Received: levels=0"),
    (lambda: L.MaxUnpooling2D(0), "Received: pool_size=0"),
    (lambda: L.Upsample2D(2, "cubic"), "Received: interpolation=cubic"),
    (lambda: L.LocalResponseNormalization(-1), "Received: depth_radius=-1"),
    (lambda: L.ChannelShuffle(0), "Received: groups=0"),
    (lambda: L.SqueezeExcitation(ratio=0), "Received: ratio=0"),
    (lambda: L.LaplacianPyramid(0), "Received: levels=0"),
    (lambda: L.LaplacianPyramid(2, mode="stack"), "Received: mode=stack"),
])
def test_constructor_errors_end_with_received(make, message):
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).endswith(message)


CUSTOM = [
    lambda: L.Padding2D(2, mode="reflect"),
    lambda: L.PaddedConv2D(4, 3, padding_mode="wrap"),
    lambda: L.SpatiallySeparableConv2D(4, 3, padding="same"),
    lambda: L.MixedPooling2D(2, learnable=True),
    lambda: L.Upsample2D(2, "bicubic"),
    lambda: L.LocalResponseNormalization(),
    lambda: L.SpatialPyramidPooling2D((1, 2)),
    lambda: L.ChannelShuffle(3),
    lambda: L.SqueezeExcitation(ratio=2, activation="swish"),
    lambda: L.LaplacianPyramid(2, mode="concat"),
]


@pytest.mark.parametrize("make", CUSTOM, ids=lambda f: type(f()).__name__)
def test_custom_layer_round_trips_through_keras_file_in_safe_mode(make, tmp_path):
    layer = make()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    inputs = keras.Input((8, 8, 3))
    outputs = layer(inputs)
    assert tuple(outputs.shape) == tuple(layer.compute_output_shape((None, 8, 8, 3)))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(5).random((2, 8, 8, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np_(loaded(x)), np_(model(x)), rtol=1e-6)


def test_unpooling_pair_round_trips(tmp_path):
    inputs = keras.Input((4, 4, 2))
    pooled, where = L.MaxPoolingWithArgmax2D(2)(inputs)
    model = keras.Model(inputs, L.MaxUnpooling2D(2)([pooled, where]))
    model.save(tmp_path / "u.keras")
    loaded = keras.saving.load_model(tmp_path / "u.keras", safe_mode=True)
    x = np.random.default_rng(6).random((1, 4, 4, 2)).astype("float32")
    np.testing.assert_array_equal(np_(loaded(x)), np_(model(x)))


def test_channel_shuffle_interleaves_the_groups_by_hand():
    x = np.arange(12, dtype="float32").reshape(1, 1, 1, 12)
    out = np_(L.ChannelShuffle(3)(x)).ravel()
    np.testing.assert_array_equal(out, x.reshape(3, 4).T.ravel())  # [0, 4, 8, 1, 5, 9, ...]
    with pytest.raises(ValueError, match=r"multiple of `groups` \(3\)"):
        L.ChannelShuffle(3)(np.ones((1, 2, 2, 4), "float32"))


def test_squeeze_excitation_matches_numpy():
    x = np.random.default_rng(1).normal(size=(2, 5, 4, 8)).astype("float32")
    layer = L.SqueezeExcitation(ratio=4)
    out = np_(layer(x))
    (w1, b1), (w2, b2) = [[np_(v) for v in sub.weights] for sub in (layer.squeeze, layer.excite)]
    assert w1.shape == (8, 2) and w2.shape == (2, 8)
    gate = 1 / (1 + np.exp(-(np.maximum(x.mean(axis=(1, 2)) @ w1 + b1, 0) @ w2 + b2)))
    np.testing.assert_allclose(out, x * gate[:, None, None, :], rtol=1e-5, atol=1e-6)
    assert layer.count_params() == 2 * 8 * 2 + 2 + 8  # 2 C^2 / r + C / r + C


@pytest.mark.parametrize("shape,levels", [((2, 32, 32, 3), 3), ((1, 29, 20, 1), 2), ((3, 9, 17, 2), 3)])
def test_laplacian_pyramid_reconstructs_its_input_to_float_precision(shape, levels):
    x = np.random.default_rng(2).random(shape).astype("float32") * 255
    pyramid = L.LaplacianPyramid(levels)(x)
    sides = [(shape[1], shape[2])]
    for _ in range(levels):
        sides.append(((sides[-1][0] + 1) // 2, (sides[-1][1] + 1) // 2))
    assert [tuple(p.shape) for p in pyramid] == [(shape[0], h, w, shape[3]) for h, w in sides]
    back = np_(L.LaplacianReconstruct()(pyramid))
    np.testing.assert_allclose(back, x, rtol=0, atol=255 * 4 * np.finfo(np.float32).eps)
    # A band-pass level of a constant image is zero; the residual carries the constant.
    flat = L.LaplacianPyramid(levels)(np.full(shape, 7.0, "float32"))
    assert all(np.abs(np_(band)).max() < 1e-5 for band in flat[:-1])
    np.testing.assert_allclose(np_(flat[-1]), 7.0, rtol=1e-6)


def test_laplacian_pyramid_as_a_front_end_and_its_pair_round_trip(tmp_path):
    config = {"name": "front", "model": {"arch": "sequential", "layers": [
        {"type": "laplacian_pyramid", "levels": 2, "mode": "concat"},
        {"type": "conv2d", "filters": 4, "kernel_size": 3},
        {"type": "channel_shuffle", "groups": 2},
        {"type": "squeeze_excitation", "ratio": 2},
        {"type": "global_avg_pool"}]}}
    import cnnkeras
    from cnnkeras.zoo import model_from_config

    model = model_from_config(cnnkeras.config_from_dict(config).model, input_shape=(16, 16, 3), num_classes=3)
    assert model.layers[1].output.shape == (None, 16, 16, 9)
    inputs = keras.Input((None, None, 2))
    pair = keras.Model(inputs, L.LaplacianReconstruct()(L.LaplacianPyramid(3)(inputs)))
    pair.save(tmp_path / "p.keras")
    loaded = keras.saving.load_model(tmp_path / "p.keras", safe_mode=True)
    x = np.random.default_rng(3).random((1, 24, 16, 2)).astype("float32")
    np.testing.assert_allclose(np_(loaded(x)), x, atol=1e-5)
    with pytest.raises(ValueError, match=r"at least 2 \*\* levels = 8.*Received: input_shape=\(1, 4, 16, 2\)"):
        L.LaplacianPyramid(3)(x[:, :4])
