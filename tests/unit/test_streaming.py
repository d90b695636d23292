"""Data larger than memory: streamed splits, the decoded cache, and their guarantees (issue 27).

The same batches as in memory (exactly), seeded per-epoch order, corrupt images named in one
line, masks moved with their images, no half-written cache after Ctrl-C, a key that follows
the files, one decode for several processes, and every way to set the cache's place.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import cnnkeras
from cnnkeras.config.schema import DataConfig
from cnnkeras.data import load_dataset
from cnnkeras.data.arrays import FileArray, SplitView
from cnnkeras.data.cache import LOG, list_cache
from cnnkeras.errors import DataError, UnreadableImage

from ..conftest import TINY_MODEL


def class_folder(root: Path, *, classes=("ant", "bee", "cat"), per_class=12, size=(12, 10), mode="RGB",
                 seed=0) -> Path:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, channels), dtype=np.uint8)
            Image.fromarray(pixels if channels == 3 else pixels[..., 0], mode).save(root / name / f"{i:03d}.png")
    return root


def mask_folder(root: Path, n=16, size=(16, 16), seed=0) -> Path:
    """Images whose mask is 1 exactly where the image's first channel is bright (>= 128)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(n):
        image = np.where(rng.random((*size, 3)) < 0.5, rng.integers(140, 256, (*size, 3)),
                         rng.integers(1, 100, (*size, 3))).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"s{i:02d}.png")
        Image.fromarray((image[..., 0] >= 128).astype(np.uint8)).save(root / "masks" / f"s{i:02d}.png")
    return root


def both(config: dict, seed: int = 1):
    memory = load_dataset(DataConfig(**config, storage="memory"), seed=seed)
    stream = load_dataset(DataConfig(**config, storage="stream"), seed=seed)
    return memory, stream


def assert_same_splits(memory, stream):
    assert memory.storage == "memory" and stream.storage == "stream"
    assert isinstance(memory.x_train, np.ndarray) and isinstance(stream.x_train, SplitView)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        expected, view = getattr(memory, name), getattr(stream, name)
        assert view.shape == expected.shape, name
        got = view[np.arange(len(view))] if len(view) else np.asarray(view[:])
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)  # exactly, not approximately
    assert memory.num_classes == stream.num_classes and memory.class_names == stream.class_names


@pytest.mark.parametrize("options", [
    {"color_mode": "rgb"},
    {"color_mode": "grayscale", "normalization": "standardize", "resize": (8, 6)},
    {"color_mode": "rgb", "classes": [2, 0], "subset": 16, "validation_split": 0.25, "normalization": "none"},
])
@pytest.mark.parametrize("cache", [True, False])
def test_a_streamed_folder_gives_exactly_the_in_memory_splits(tmp_path, options, cache):
    root = class_folder(tmp_path / "imgs")
    memory, stream = both({"source": "image_folder", "path": str(root), "cache": cache, **options})
    assert_same_splits(memory, stream)
    assert (memory.cache_entry is not None) == cache


@pytest.mark.parametrize("saver", [np.savez, np.savez_compressed])
def test_a_streamed_npz_gives_exactly_the_in_memory_splits(tmp_path, saver):
    rng = np.random.default_rng(3)
    path = tmp_path / "d.npz"
    saver(path, x_train=rng.integers(0, 256, (60, 9, 7), dtype=np.uint8), y_train=np.arange(60) % 3,
          x_test=rng.integers(0, 256, (15, 9, 7), dtype=np.uint8), y_test=np.arange(15) % 3)
    for options in ({}, {"resize": (12, 10), "normalization": "standardize"}):
        memory, stream = both({"source": "npz", "path": str(path), **options})
        assert_same_splits(memory, stream)
    uncompressed = saver is np.savez
    assert isinstance(stream.x_train.base, FileArray)
    assert (stream.cache_entry is None) == uncompressed  # read in place, or decompressed once into the cache


def test_a_compressed_npz_cannot_stream_without_the_cache(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, x_train=np.zeros((10, 4, 4), "uint8"), y_train=np.arange(10) % 2)
    with pytest.raises(DataError, match=r"compressed \(numpy.savez_compressed\): set data.cache: true"):
        load_dataset(DataConfig(source="npz", path=str(path), storage="stream", cache=False), seed=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_rows_of_a_view_are_the_rows_of_the_array(tmp_path_factory, data):
    """The class: an int, a slice, or an index array in any order (repeats too) reads what NumPy would."""
    root = tmp_path_factory.getbasetemp() / "hyp-folder"
    if not root.exists():
        class_folder(root)
    memory, stream = both({"source": "image_folder", "path": str(root), "color_mode": "rgb"})
    n = len(memory.x_train)
    index = data.draw(st.one_of(
        st.integers(-n, n - 1),
        st.builds(slice, st.integers(-n, n) | st.none(), st.integers(-n, n) | st.none(),
                  st.integers(1, 4) | st.none()),
        st.lists(st.integers(0, n - 1), max_size=40).map(lambda v: np.asarray(v, dtype=np.int64)),
    ))
    np.testing.assert_array_equal(stream.x_train[index], memory.x_train[index])


def test_streamed_batches_are_seeded_per_epoch_and_cover_every_row(tmp_path):
    from cnnkeras.data.stream import EpochOrder, StreamBatches

    root = class_folder(tmp_path / "imgs")
    memory, stream = both({"source": "image_folder", "path": str(root), "color_mode": "rgb"})
    batches = StreamBatches(stream.x_train, stream.y_train, batch_size=7, seed=5, shuffle=True, workers=2)
    again = StreamBatches(stream.x_train, stream.y_train, batch_size=7, seed=5, shuffle=True, workers=1)
    orders = []
    for epoch in range(3):
        EpochOrder([batches, again]).on_epoch_begin(epoch)
        xs, ys = zip(*(batches[i] for i in range(len(batches))))
        rows = batches.order_of(epoch)
        assert sorted(rows.tolist()) == list(range(len(memory.x_train)))
        np.testing.assert_array_equal(np.concatenate(xs), memory.x_train[rows])  # the memory rows, that order
        np.testing.assert_array_equal(np.concatenate(ys), memory.y_train[rows])
        for i in range(len(again)):  # read ahead by threads or not: the same batches
            np.testing.assert_array_equal(again[i][0], xs[i])
        orders.append(rows.tolist())
    assert orders[0] != orders[1] != orders[2]
    other_seed = StreamBatches(stream.x_train, stream.y_train, batch_size=7, seed=6)
    assert other_seed.order_of(0).tolist() != orders[0]
    batches.close()


def _experiment(write_config, root, *extra: str, name: str = "stream"):
    return write_config(f"""
        name: {name}
        seed: 4
        data: {{source: image_folder, path: {root}, color_mode: rgb, validation_split: 0.25}}
        train: {{epochs: 2, batch_size: 8, optimizer: {{name: adam, learning_rate: 0.01}}}}
        tracking: {{log_plots: false, log_model: false}}
        """, TINY_MODEL, *extra, name=f"{name}.yaml")


@pytest.mark.slow
def test_training_on_a_streamed_folder_is_the_in_memory_training(tmp_path, write_config, tracking_uri):
    """Unshuffled, the two storages feed the same batches: the same metrics, to the last bit. Shuffled,
    a streamed run repeats itself exactly; the run's parameters say which storage was used."""
    root = class_folder(tmp_path / "imgs")
    path = _experiment(write_config, root)
    memory = cnnkeras.run(path, ["data.storage=memory", "train.shuffle=false"], progress=False)
    stream = cnnkeras.run(path, ["data.storage=stream", "train.shuffle=false"], progress=False)
    assert memory.history["loss"] == stream.history["loss"]
    assert memory.history["val_accuracy"] == stream.history["val_accuracy"]
    assert memory.summary["test_loss"] == stream.summary["test_loss"]
    first = cnnkeras.run(path, ["data.storage=stream"], progress=False)
    second = cnnkeras.run(path, ["data.storage=stream"], progress=False)
    assert first.history["loss"] == second.history["loss"] and first.summary == {
        **second.summary, "train_time_s": first.summary["train_time_s"]}

    from mlflow.tracking import MlflowClient

    params = MlflowClient(tracking_uri).get_run(stream.run_id).data.params
    assert params["data.storage"] == "stream" and params["data.storage_used"] == "stream"
    assert params["data.cache_entry"].startswith(str(Path(os.environ["CNNKERAS_CACHE_DIR"])))
    auto = MlflowClient(tracking_uri).get_run(first.run_id).data.params
    assert auto["data.storage_used"] == "stream"


def test_auto_keeps_in_memory_what_the_limit_allows(tmp_path):
    root = class_folder(tmp_path / "imgs")  # 36 images of 12x10x3: 51,840 bytes as float32
    small = load_dataset(DataConfig(source="image_folder", path=str(root), color_mode="rgb"), seed=0)
    assert small.storage == "memory" and small.summary()["storage_used"] == "memory"
    limited = load_dataset(DataConfig(source="image_folder", path=str(root), color_mode="rgb",
                                      memory_limit_gb=51_000 / 2**30), seed=0)
    assert limited.storage == "stream"
    assert load_dataset(DataConfig(source="digits", memory_limit_gb=1e-6), seed=0).storage == "memory"


def test_stream_is_refused_for_sources_that_load_whole(write_config):
    path = write_config("name: x\ndata: {source: digits, storage: stream}\n")
    with pytest.raises(cnnkeras.ConfigError, match=r"data.storage: .*storage: stream needs source image_folder"):
        cnnkeras.load_config(path)


@pytest.mark.slow
def test_a_corrupt_image_met_mid_stream_is_one_line_naming_the_file(tmp_path, write_config, tracking_uri):
    """Decoded batch by batch (cache: false), the broken file is met while training: the run stops with
    the UnreadableImage naming it, not TensorFlow's wrapper of it, and the CLI prints one line."""
    root = class_folder(tmp_path / "imgs", per_class=20)
    path = _experiment(write_config, root)
    text = path.read_text().replace("validation_split: 0.25}", "validation_split: 0.25, storage: stream, "
                                     "cache: false}").replace("epochs: 2", "epochs: 1")
    path.write_text(text)
    config = cnnkeras.load_config(path)
    victim = root / "bee" / "007.png"
    load_dataset(config.data, seed=config.seed)  # the folder reads fine when listed
    from cnnkeras.runner import prepare

    data, _ = prepare(config)
    victim.write_bytes(b"\x89PNG\r\n\x1a\n broken after it was listed")
    with pytest.raises(UnreadableImage, match=r"cannot read image .*bee/007\.png") as caught:
        from cnnkeras.training.fit import fit_and_evaluate

        _, model = prepare(config, data)
        fit_and_evaluate(model, data, config, progress=False)
    assert caught.value.path == str(victim) and "\n" not in str(caught.value)

    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "run", str(path), "--quiet",
                           "data.resize=[12,10]"],  # a new key: listed and cached again, so met mid-stream
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and "bee/007.png" in errors[0] and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_a_corrupt_image_met_while_decoding_into_the_cache_leaves_no_entry(tmp_path, data_cache):
    root = class_folder(tmp_path / "imgs")
    (root / "cat" / "100.png").write_bytes(b"not a png")
    with pytest.raises(UnreadableImage, match=r"cannot read image .*cat/100\.png: not an image file"):
        load_dataset(DataConfig(source="image_folder", path=str(root)), seed=0)
    assert [p.name for p in data_cache.iterdir() if p.is_dir()] == []


def test_masks_stay_aligned_with_their_images_when_streamed_and_augmented(tmp_path):
    """A mask is 1 where its image is bright: after flips, shifts, rotations and zooms (nearest), on
    every streamed batch, that still holds pixel by pixel (and the fill is black background)."""
    from cnnkeras.training.fit import fit_inputs, targets_of

    root = mask_folder(tmp_path / "seg")
    config = cnnkeras.config_from_dict({
        "name": "seg", "seed": 3,
        "data": {"source": "image_folder", "path": str(root), "color_mode": "rgb", "storage": "stream",
                 "augmentation": {"flip": "horizontal_and_vertical", "shift": 0.2, "rotation": 0.2, "zoom": 0.2}},
        "model": {"arch": "unet", "head": "segmentation", "depth": 2, "base_width": 4},
        "train": {"batch_size": 4}})
    data = load_dataset(config.data, seed=config.seed)
    assert data.streamed and data.task == "segmentation"
    batches = fit_inputs(data, targets_of(data, config), config)["x"]
    moved = 0
    for _epoch in range(2):
        for i in range(len(batches)):
            x, y = batches[i]
            np.testing.assert_array_equal(y, (x[..., 0] >= 128 / 255).astype(y.dtype))
            moved += int(np.any(x == 0))  # the fill of a transform: black, background
        batches.on_epoch_end()
    assert moved > 0


def test_the_cache_key_follows_the_files(tmp_path, data_cache):
    root = class_folder(tmp_path / "imgs")
    config = DataConfig(source="image_folder", path=str(root))
    first = load_dataset(config, seed=0).cache_entry
    assert load_dataset(config, seed=0).cache_entry == first  # unchanged files: the same entry, not decoded again
    log = (data_cache / LOG).read_text().splitlines()
    assert len(log) == 1

    victim = root / "ant" / "003.png"
    pixels = np.asarray(Image.open(victim)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(victim)  # edited: new bytes, new mtime
    edited = load_dataset(config, seed=0)
    assert edited.cache_entry != first
    assert {e.status for e in list_cache()} == {"current", "stale"}

    os.utime(victim, ns=(1_000_000_000, 1_000_000_000))  # only the modification time changes
    touched = load_dataset(config, seed=0).cache_entry
    assert touched not in (first, edited.cache_entry)
    victim.rename(root / "ant" / "zzz.png")  # renamed
    assert load_dataset(config, seed=0).cache_entry not in (first, edited.cache_entry, touched)
    assert load_dataset(DataConfig(source="image_folder", path=str(root), color_mode="rgb"), seed=0).cache_entry \
        != load_dataset(config, seed=0).cache_entry  # another colour mode: another entry

    removed = cnnkeras.cache_clear(stale=True)
    assert len(removed) == 3 and [e.status for e in list_cache()] == ["current", "current"]  # gray, rgb


def test_the_cache_folder_is_set_by_the_config_key_or_the_environment(tmp_path, write_config, monkeypatch):
    root = class_folder(tmp_path / "imgs")
    env_dir = tmp_path / "from-env"
    monkeypatch.setenv("CNNKERAS_CACHE_DIR", str(env_dir))
    from_env = load_dataset(DataConfig(source="image_folder", path=str(root)), seed=0).cache_entry
    assert Path(from_env).parent == env_dir

    path = write_config(f"name: c\ndata: {{source: image_folder, path: {root}, cache_dir: my-cache}}\n")
    config = cnnkeras.load_config(path)
    assert config.data.cache_dir == str(tmp_path / "my-cache")  # relative to the config file, and wins
    from_key = load_dataset(config.data, seed=0).cache_entry
    assert Path(from_key).parent == tmp_path / "my-cache"
    override = cnnkeras.load_config(path, ["data.cache_dir=elsewhere"]).data.cache_dir
    assert override == os.path.abspath("elsewhere")
    assert [e.name for e in cnnkeras.cache_list(tmp_path / "my-cache")] == [Path(from_key).name]


def test_two_processes_needing_one_folder_at_once_decode_it_once(tmp_path, data_cache):
    root = class_folder(tmp_path / "imgs", per_class=400, size=(24, 24))
    code = ("import sys; from cnnkeras.config.schema import DataConfig; from cnnkeras.data import load_dataset; "
            f"d = load_dataset(DataConfig(source='image_folder', path={str(root)!r}), seed=0); "
            "print(d.cache_entry)")
    processes = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert len({out.strip() for out, _ in outputs}) == 1
    assert len((data_cache / LOG).read_text().splitlines()) == 1  # decoded once, mapped three times
    assert sum("cnnkeras: decoding 1,200 images" in err for _, err in outputs) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_ctrl_c_while_decoding_leaves_no_half_written_cache(tmp_path, write_config, data_cache):
    """A real ``cnnkeras run`` gets SIGINT while it decodes into the cache. One of the images is a named
    pipe that never delivers, so the interrupt always lands mid-decode; afterwards there is no entry
    and no temporary folder, and the next run decodes the (repaired) folder whole."""
    root = class_folder(tmp_path / "imgs", per_class=30)
    pipe = root / "bee" / "015.png"
    pipe.unlink()
    os.mkfifo(pipe)
    path = _experiment(write_config, root, name="sigint")
    process = subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", "run", str(path), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list(data_cache.glob(".*.tmp-*")):
        assert process.poll() is None and time.time() < deadline, process.stdout.read()
        time.sleep(0.05)
    time.sleep(0.5)  # blocked on the pipe, images before it written
    process.send_signal(signal.SIGINT)
    deadline = time.time() + 60
    while list(data_cache.glob(".*.tmp-*")) and time.time() < deadline:
        time.sleep(0.05)
    try:  # let a reader still stuck on the pipe go (none left if the process is gone)
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0, output
    assert [p.name for p in data_cache.iterdir() if p.is_dir()] == [], output  # no entry, no temporary folder
    assert not (data_cache / LOG).exists()

    pipe.unlink()
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(pipe)
    data = load_dataset(cnnkeras.load_config(path).data, seed=0)
    entry = json.loads((Path(data.cache_entry) / "meta.json").read_text())
    assert entry["count"] == 90 and entry["arrays"]["images"]["shape"] == [90, 12, 10, 3]


def test_a_16_bit_image_is_refused_rather_than_clipped(tmp_path):
    root = class_folder(tmp_path / "imgs", mode="L")
    Image.fromarray(np.full((12, 10), 4000, np.uint16)).save(root / "ant" / "wide.png")
    with pytest.raises(DataError, match=r"wide.png has more than 8 bits per pixel"):
        load_dataset(DataConfig(source="image_folder", path=str(root)), seed=0)


def test_the_cache_cli_lists_and_clears(tmp_path, data_cache):
    root = class_folder(tmp_path / "imgs")
    entry = Path(load_dataset(DataConfig(source="image_folder", path=str(root)), seed=0).cache_entry)
    listed = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "cache", "list"], capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert entry.name in listed.stdout and "current" in listed.stdout and str(root) in listed.stdout
    assert all(len(line) <= 80 for line in listed.stdout.splitlines() if line[:1] in "┏┃┡│└")  # the table whole
    refused = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "cache", "clear"], capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "--stale or --all" in refused.stderr
    cleared = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "cache", "clear", entry.name, "--dir",
                              str(data_cache)], capture_output=True, text=True, timeout=120)
    assert cleared.returncode == 0 and "removed 1 entry" in cleared.stdout, cleared.stderr
    assert not entry.exists() and cnnkeras.cache_list() == []


def test_the_leftovers_of_a_killed_decode_are_removed_by_the_next_one(tmp_path, data_cache):
    """kill -9 mid-decode leaves a temporary folder (nothing can clean up then): it is never read, shows
    as partial, and the next process that builds that entry removes it."""
    root = class_folder(tmp_path / "imgs")
    config = DataConfig(source="image_folder", path=str(root))
    entry = Path(load_dataset(config, seed=0).cache_entry)
    shutil.rmtree(entry)
    leftover = data_cache / f".{entry.name}.tmp-999999"
    leftover.mkdir()
    (leftover / "images.npy").write_bytes(b"\x93NUMPY half written")
    assert [e.status for e in list_cache()] == ["partial"]
    again = load_dataset(config, seed=0)
    assert again.cache_entry == str(entry) and not leftover.exists()
    assert [e.status for e in list_cache()] == ["current"]
