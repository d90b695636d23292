"""What a sweep prints (cnnkeras.studies.console): the live panel and the one-line-per-trial form, at 80 and 200 columns."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from cnnkeras.config.schema import SearchConfig
from cnnkeras.studies.console import SweepDisplay, TrialLine, fit_line, short_keys

SEARCH = SearchConfig.model_validate({
    "n_trials": 6,
    "parameters": {"train.optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                   "train.batch_size": {"type": "categorical", "choices": [16, 64]},
                   "model.dropout": {"type": "float", "low": 0.0, "high": 0.5},
                   "data.augmentation.rotation": {"type": "float", "low": 0.0, "high": 0.2}},
})
PARAMS = {"train.optimizer.learning_rate": 0.00123456, "train.batch_size": 64, "model.dropout": 0.25,
          "data.augmentation.rotation": 0.1}


def frozen(number, state, value=None, gap=None, reason=None):
    summary = {} if value is None else {"best_val_accuracy": value, "final_gap_accuracy": gap}
    attrs = {"summary": summary, **({"reason": reason} if reason else {})}
    return SimpleNamespace(number=number, state=SimpleNamespace(name=state), params=PARAMS, user_attrs=attrs,
                           values=[value] if state == "COMPLETE" else None)


def asked(number):
    return SimpleNamespace(number=number, trial=SimpleNamespace(params=PARAMS))


def console(width):
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None, legacy_windows=False)


def test_short_keys_abbreviate_and_stay_distinct():
    names = short_keys(PARAMS)
    assert names == {"train.optimizer.learning_rate": "lr", "train.batch_size": "batch", "model.dropout": "drop",
                     "data.augmentation.rotation": "rotation"}
    assert short_keys(["model.dropout", "data.dropout"]) == {"model.dropout": "model.drop", "data.dropout": "data.drop"}
    assert short_keys(["a.b.c", "x.b.c"]) == {"a.b.c": "a.b.c", "x.b.c": "x.b.c"}


@given(st.lists(st.from_regex(r"[a-z]{1,6}(\.[a-z_]{1,8}){0,3}", fullmatch=True), min_size=1, max_size=6, unique=True))
def test_short_keys_never_show_two_keys_alike(keys):
    shown = short_keys(keys)
    assert set(shown) == set(keys) and len(set(shown.values())) == len(keys)


@pytest.mark.parametrize("width", [80, 200])
def test_a_trial_line_shows_the_objective_and_the_gap_and_fits(width):
    line = TrialLine(console(width), SEARCH)
    text = line.text(frozen(3, "COMPLETE", 0.93125, 0.04187), width)
    assert text.startswith("trial   3 COMPLETE best_val_accuracy=0.9313 gap=0.0419  lr=0.001235 batch=64")
    assert len(text) <= width
    if width == 200:
        assert text.endswith("drop=0.25 rotation=0.1")  # whole when there is room
    pruned = line.text(frozen(4, "PRUNED", 0.5, 0.1, reason="pruned at epoch 2"), width)
    assert "gap=0.1000 (pruned at epoch 2)" in pruned and len(pruned) <= width
    failed = line.text(frozen(5, "FAIL", reason="DataError: " + "x" * 150), width)
    assert failed.endswith("x" * 150)  # a failure's reason is never cut


def test_fit_line_cuts_the_parameters_never_the_numbers():
    assert fit_line("trial 1 0.9312  ", "lr=0.1 batch=64", 80) == "trial 1 0.9312  lr=0.1 batch=64"
    assert fit_line("trial 1 0.9312  ", "lr=0.1 batch=64", 24) == "trial 1 0.9312  lr=0.1 …"
    assert fit_line("trial 1 0.9312  ", "lr=0.1", 17) == "trial 1 0.9312  "


def _shown(display, width):
    out = console(width)
    out.print(display.render())
    return out.file.getvalue()


@pytest.mark.parametrize("width", [80, 200])
def test_the_live_panel_shows_running_trials_counts_best_and_eta(width):
    display = SweepDisplay(console(width), SEARCH, study="lr-sweep", total=6, best=(0.9, 0))
    display.started(asked(1))
    display.started(asked(2))
    display.epoch(asked(1), 3, 10, {"value": 0.8123, "gap": 0.0456})
    text = _shown(display, width)
    lines = text.splitlines()
    if width == 200:
        assert lines[0].startswith("lr-sweep: 0/6 done (0 complete, 0 pruned, 0 failed) · best 0.9000 (trial 0) · ETA")
    else:  # shortened to fit
        assert lines[0].startswith("lr-sweep: 0/6 done (0 ok, 0 pruned, 0 failed) · best 0.9000 (#0) · ETA")
    assert "val accuracy" in lines[1] and "gap" in lines[1]
    row = next(line for line in lines if line.split()[:1] == ["1"])
    assert "3/10" in row and "0.8123" in row and "0.0456" in row and "lr=0.001235" in row
    assert any("starting" in line for line in lines)
    assert all(len(line) <= width for line in lines)
    display.ended(asked(1))
    display.told(frozen(1, "COMPLETE", 0.95, 0.02))
    display.told(frozen(2, "PRUNED", 0.4, 0.1, reason="pruned at epoch 1"))
    header = _shown(display, width).splitlines()[0]
    assert header.startswith("lr-sweep: 2/6 done (1 complete, 1 pruned, 0 failed) · best 0.9500 (trial 1) · ETA "
                             if width == 200 else "lr-sweep: 2/6 done (1 ok, 1 pruned, 0 failed) · best 0.9500 (#1)")
    assert len(header) <= width
    printed = display.console.file.getvalue()
    assert "trial   1 COMPLETE best_val_accuracy=0.9500 gap=0.0200" in printed  # its line, above the panel


def test_eta_from_finished_trials_or_from_the_running_trials_epochs(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("cnnkeras.studies.console.time.monotonic", lambda: clock[0])
    display = SweepDisplay(console(80), SEARCH, study="s", total=4)
    assert display.eta_s() is None
    display.started(asked(0))
    clock[0] = 110.0
    display.epoch(asked(0), 1, 5, {})
    assert display.eta_s() == pytest.approx(4 * 50.0)  # 10 s an epoch, 5 epochs, 4 trials left, one at a time
    display.told(frozen(0, "COMPLETE", 0.5, 0.1))
    clock[0] = 130.0
    assert display.eta_s() == pytest.approx(3 * 30.0)  # 30 s of wall time per finished trial
