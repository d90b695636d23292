"""Terminal output fits: tables (runs, zoo, inspect), epoch lines and errors, at 80 and 200 columns."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from cnnkeras.reporting.tables import Column, elide_middle, fitted_table, layer_type, runs_table
from cnnkeras.training.epoch_line import epoch_line


def shown(table, width) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(table)
    return console.file.getvalue().splitlines()


def test_elide_middle_keeps_both_ends():
    assert elide_middle("stage2_block1_conv1_act", 23) == "stage2_block1_conv1_act"
    assert elide_middle("stage2_block1_conv1_act", 11) == "stage…1_act"
    assert elide_middle("stage2_block1_conv1_act", 18, head=6) == "stage2…1_conv1_act"
    assert layer_type("GlobalAveragePooling2D") == "GAvgPool2D" and layer_type("BatchNormalization") == "BatchNorm"


names = st.lists(st.from_regex(r"[a-z]{2,6}(_[a-z0-9]{1,6}){1,5}", fullmatch=True), min_size=1, max_size=25, unique=True)
numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: f"{v:,.4f}")


@settings(max_examples=60, deadline=None)
@given(names.flatmap(lambda ns: st.tuples(st.just(ns), st.lists(st.tuples(numbers, numbers), min_size=len(ns),
                                                                max_size=len(ns)))),
       st.sampled_from([40, 80, 200]))
def test_numbers_are_never_cut_and_names_stay_distinct(data, width):
    keys, values = data
    rows = [[name, "SomeLongLayerTypeName", a, b] for name, (a, b) in zip(keys, values)]
    columns = [Column(("layer",), kind="name", justify="left"), Column(("type",), kind="text", justify="left"),
               Column(("first value", "first"), drop=0), Column(("second",))]
    lines = shown(fitted_table(None, columns, rows, width), 10_000)
    body = lines[2:]
    for line, (a, b) in zip(body, values):
        assert a in line and b in line  # whole
    assert len({line.split()[0] for line in body}) == len(keys)  # no two rows alike
    needed = max(len(a) for a, _ in values) + max(len(b) for _, b in values) + 8 + 8 + 6
    if needed + 8 <= width:
        assert max(len(line) for line in lines) <= width


def test_optional_columns_go_before_headers_are_cut_and_come_back_with_room():
    columns = [Column(("run",), kind="name", justify="left"), Column(("best validation accuracy", "val acc")),
               Column(("test accuracy",), drop=1)]
    rows = [[f"trial-{i}", "0.9312", "0.9100"] for i in range(3)]
    narrow = shown(fitted_table(None, columns, rows, 24), 24)
    assert narrow[0].split() == ["run", "val", "acc"] and all(len(line) <= 24 for line in narrow)
    columns = [Column(("run",), kind="name", justify="left"), Column(("best validation accuracy", "val acc")),
               Column(("test accuracy",), drop=1)]
    wide = shown(fitted_table(None, columns, rows, 200), 200)
    assert "best validation accuracy" in wide[0] and "test accuracy" in wide[0]


def frame():
    rows = []
    for i, (lr, batch, acc, gap, state) in enumerate([(1e-3, 16, 0.91, 0.03, "COMPLETE"), (3e-4, 64, 0.95, 0.01,
                                                      "COMPLETE"), (1e-5, 16, 0.40, -0.02, "PRUNED"),
                                                     (0.1, 64, None, None, "FAIL")]):
        rows.append({"run_id": f"id{i}", "run_name": f"trial-{i}" + (" (pruned at epoch 2)" if state == "PRUNED"
                                                                    else ""),
                     "status": "FINISHED", "trial_state": state, "param.train.optimizer.learning_rate": lr,
                     "param.train.batch_size": batch, "param.seed": 0, "param.tracking.run_name": f"trial-{i}",
                     "best_val_accuracy": acc, "final_gap_accuracy": gap, "epochs": 10.0, "test_accuracy": acc,
                     "experiment_id": "1"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("width", [80, 200])
def test_runs_show_trial_state_swept_parameters_objective_and_gap_sorted(width):
    lines = shown(runs_table(frame(), title="sw: 4 runs", width=width), width)
    assert all(len(line) <= width for line in lines)
    header = lines[1].split()
    assert header[:4] == ["run", "state", "lr", "batch"]  # the varying parameters, keys abbreviated
    assert "seed" not in header and "run_name" not in " ".join(header)  # not swept; bookkeeping
    body = [line.split() for line in lines[3:]]
    assert [row[0] for row in body] == ["trial-1", "trial-0", "trial-2", "trial-3"]  # best first, failed last
    assert body[0][:6] == ["trial-1", "COMPLETE", "0.0003", "64", "0.9500", "0.0100"]
    assert body[2][:3] == ["trial-2", "PRUNED", "1e-05"] and body[3][4:6] == ["-", "-"]
    if width == 200:
        assert "best val accuracy" in lines[1] and "test accuracy" in lines[1]


def test_runs_of_a_study_show_its_swept_keys_and_objective_direction():
    lines = shown(runs_table(frame(), title="t", width=80, swept=["train.batch_size"], objective="final_gap_accuracy",
                             maximize=False), 80)
    assert lines[1].split()[:3] == ["run", "state", "batch"]
    assert [line.split()[0] for line in lines[3:]][:3] == ["trial-2", "trial-1", "trial-0"]  # smallest gap first


RECORD = {"loss": 0.23456, "accuracy": 0.93, "val_loss": 0.301, "val_accuracy": 0.91, "gap_accuracy": 0.02,
          "gap_loss": 0.07, "epoch_time_s": 1.23, "learning_rate": 0.001}
SEGMENTATION = {"loss": 0.5, "val_loss": 0.6, "gap_loss": 0.1, "accuracy": 0.9, "val_accuracy": 0.88,
                "gap_accuracy": 0.02, "mean_iou": 0.5, "val_mean_iou": 0.45, "gap_mean_iou": 0.05,
                "epoch_time_s": 10.0}


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("title", ["quickstart", "a-very-long-experiment-name-for-segmentation-sweeps"])
def test_an_epoch_line_fits_and_keeps_the_validation_value_and_the_gap(width, title):
    for record, headline in ((RECORD, "acc"), (SEGMENTATION, "iou")):
        line = epoch_line(title, 12, 30, record, width)
        assert len(line) <= width and "epoch 12/30" in line
        assert re.search(rf"{headline} .*val 0\.\d{{4}} gap \+0\.0\d{{3}}|val {headline} 0\.\d{{4}} gap", line), line
    full = epoch_line("quickstart", 3, 10, RECORD, 200)
    assert full == "quickstart epoch 3/10  acc 0.9300 val 0.9100 gap +0.0200  loss 0.2346 val 0.3010 gap +0.0700  1.2s"


def test_a_piped_run_prints_epoch_lines_of_80_columns(tiny_config):
    done = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "run", str(tiny_config), "name=" + "x" * 60],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    epochs = [line for line in done.stderr.splitlines() if " epoch " in line]
    assert len(epochs) == 3 and all(len(line) <= 80 for line in epochs), epochs
    assert all(re.search(r"val (acc )?0\.\d{4} gap [+-]0\.\d{4}", line) for line in epochs), epochs
    assert all(len(line) <= 80 for line in done.stdout.splitlines())
    assert "Warning" not in done.stderr and "Downloading" not in done.stderr


def test_an_error_is_one_line_in_a_pipe_and_wraps_at_the_terminals_width(write_config):
    import pty

    path = write_config("name: e\ntrain: {batch_size: 0}\ndata: {source: digits, validation_split: 1.5}\n")
    piped = subprocess.run([sys.executable, "-m", "cnnkeras.cli", "run", str(path)], capture_output=True, text=True,
                           timeout=120)
    assert piped.returncode == 2
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "cnnkeras.cli", "run", str(path)], stdout=slave, stderr=slave,
                               env={**os.environ, "COLUMNS": "60", "TERM": "xterm"})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=120)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode())
    lines = [line for line in text.replace("\r", "").splitlines() if line.strip()]
    assert process.returncode == 2 and len(lines) > 1 and all(len(line) <= 60 for line in lines), lines
    same = "".join((piped.stdout + piped.stderr).split())  # the same words (a long path folds where it must)
    assert "".join("".join(lines).split()) == same
