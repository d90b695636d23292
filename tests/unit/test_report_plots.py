"""The report's plots read back from its HTML: category order, direction of the means, ticks, bins, budget.

Runs are hand-built (tests/handmade_runs.py) with known gaps in a real SQLite MLflow store: L2 lowers
the gap by 0.1, each 4x of the batch raises it by 0.04, and ``train.l2 = 0`` is logged as "0" by some
runs and "0.0" by others. The figures are the plotly JSON the page draws.
"""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkeras.analysis.budget import Budget, frame_at_budget, resolve_budget
from cnnkeras.analysis.claims import SUPPORTED, TOO_FEW, ParamScale
from cnnkeras.analysis.frames import curves_frame, runs_frame
from cnnkeras.analysis.values import canonical_column, ordered_values, value_label
from cnnkeras.reporting.study_figures import grid_cells, log_ticks

from ..handmade_runs import figures, log_runs, report_page, report_source, titled


@pytest.fixture()
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _significant(text: str) -> int:
    digits = re.sub(r"[^0-9]", "", text.split("e")[0]).lstrip("0")
    return len(digits.rstrip("0")) if "." in text else len(digits.rstrip("0") or "0")


def _mean_trace(fig: dict, xaxis: str = "x") -> dict:
    return next(t for t in fig["data"] if t.get("name", "").startswith("mean") and t.get("xaxis", "x") == xaxis)


def test_zero_and_zero_point_zero_are_one_level_and_the_mean_goes_the_way_the_runs_do(tmp_path, store):
    log_runs(store)
    result, html = report_page(tmp_path, store)
    l2 = next(c for c in result.claims if c.parameter == "train.l2")
    assert l2.verdict == SUPPORTED and l2.change == pytest.approx(-0.1, abs=1e-3)
    fig = titled(figures(html), "L2 narrows the gap")
    assert fig["layout"]["xaxis"]["type"] == "category"
    assert fig["layout"]["xaxis"]["categoryarray"] == ["0", "0.001"]  # not "0.0", "0.001", "0"
    runs = next(t for t in fig["data"] if t["name"] == "run")
    assert set(runs["x"]) == {"0", "0.001"} and len(runs["x"]) == 12
    mean = _mean_trace(fig)
    assert mean["x"] == ["0", "0.001"]
    assert mean["y"][0] - mean["y"][1] == pytest.approx(0.1, abs=1e-3)  # the gap falls with L2, as the line shows


def test_a_categorical_of_numbers_is_drawn_in_value_order_with_its_means_rising(tmp_path, store):
    log_runs(store)
    result, html = report_page(tmp_path, store)
    batch = next(c for c in result.claims if c.parameter == "train.batch_size")
    assert batch.verdict == SUPPORTED
    fig = titled(figures(html), "Large batches overfit more")
    assert fig["layout"]["xaxis"]["categoryarray"] == ["16", "64", "256"]
    mean = _mean_trace(fig)
    assert mean["x"] == ["16", "64", "256"]
    assert mean["y"][0] < mean["y"][1] < mean["y"][2]
    assert mean["y"][2] - mean["y"][0] == pytest.approx(0.08, abs=1e-3)
    gap = titled(figures(html), "Generalization gap and validation accuracy")
    axes = {key: axis for key, axis in gap["layout"].items() if key.startswith("xaxis")}
    categorical = [axis for axis in axes.values() if axis.get("type") == "category"]
    assert {tuple(axis["categoryarray"]) for axis in categorical} >= {("0", "0.001"), ("16", "64", "256")}


def test_a_continuous_log_parameter_has_readable_ticks_and_the_heat_map_bins_it(tmp_path, store):
    log_runs(store)
    _, html = report_page(tmp_path, store)
    gap = titled(figures(html), "Generalization gap and validation accuracy")
    logs = [axis for key, axis in gap["layout"].items() if key.startswith("xaxis") and axis.get("type") == "log"]
    assert logs, "the learning rate is drawn on a log axis"
    for axis in logs:
        assert axis["ticktext"] and all(_significant(t) <= 3 for t in axis["ticktext"])
        assert axis["tickvals"] == sorted(axis["tickvals"])
    heat = titled(figures(html), "Learning rate x batch size")
    cells = heat["data"][0]["x"]
    assert 1 < len(cells) <= 6 and all("–" in c for c in cells)  # ranges, not each sampled rate
    lows = [float(c.split("–")[0]) for c in cells]
    assert lows == sorted(lows)
    assert all(_significant(part) <= 3 for c in cells for part in c.split("–"))
    assert heat["data"][0]["y"] == ["16", "64", "256"]
    assert "binned" in heat["layout"]["xaxis"]["title"]["text"]


def test_importances_stand_with_their_trial_count_and_the_budget_is_stated(tmp_path, store):
    log_runs(store)
    result, html = report_page(tmp_path, store)
    assert result.budget.label == "epoch 3"
    assert "Runs compared at <b>epoch 3 (every run trained 3 epochs)</b>" in html
    assert all(r.n_trials == 12 for r in result.importances.values())
    fig = titled(figures(html), "Parameter importances")
    assert all("(12 trials)" in trace["name"] for trace in fig["data"])
    assert "optuna-dashboard computes its own importances" in html


def test_too_few_trials_say_so_instead_of_ranking(tmp_path, store):
    log_runs(store)
    frame = runs_frame(report_source(store)).iloc[:5]
    from cnnkeras.studies.importance import frame_importances

    scales = {"train.l2": ParamScale("linear", (0.0, 0.001)), "train.batch_size": ParamScale("log", (16, 64, 256)),
              "train.optimizer.learning_rate": ParamScale("log"), "seed": ParamScale("levels", (0, 1))}
    found = frame_importances(frame, scales, {"gap": "final_gap_accuracy"})
    assert dict(found["gap"]) == {} and found["gap"].n_trials == 5
    # the first five runs all have L2 = 0: three parameters vary
    assert found["gap"].text() == "too few trials to rank parameters (5 finished; at least 8 for 3 parameters)"


def test_pruned_trials_count_up_to_where_they_stopped(tmp_path, store):
    log_runs(store, pruned_at={0: 2, 3: 1, 7: 2})
    source = report_source(store)
    runs, curves = runs_frame(source), curves_frame(source)
    auto = resolve_budget("auto", runs)
    assert auto == Budget("epoch", 3, auto.reason) and "3 were pruned" in auto.reason
    at_two = frame_at_budget(runs, curves, Budget("epoch", 2))
    pruned = at_two[at_two["trial_state"] == "PRUNED"]
    assert pruned["budget_epoch"].notna().sum() == 2  # pruned at epoch 2: counted; at epoch 1: not
    row = at_two[at_two["run_name"] == "trial-0"].iloc[0]
    assert row["final_gap_accuracy"] == pytest.approx(row["final_train_accuracy"] - row["final_val_accuracy"])
    assert not math.isnan(row["test_accuracy"])  # its last epoch is the budget's: its final model's test counts
    later = at_two[at_two["run_name"] == "trial-1"].iloc[0]
    assert math.isnan(later["test_accuracy"])  # trained on after epoch 2: its test is not of the model at epoch 2
    assert later["final_val_accuracy"] == pytest.approx(0.6 + 0.3 * 2 / 3 - later["final_gap_accuracy"] / 2)
    result, html = report_page(tmp_path, store, budget={"epoch": 2})
    l2 = next(c for c in result.claims if c.parameter == "train.l2")
    assert l2.n_runs == 11 and l2.budget == "epoch 2" and "at epoch 2" in l2.sentence
    assert "2 of 3 pruned trial(s) reached epoch 2 and count" in html
    final, _ = report_page(tmp_path, store, budget="final")
    assert next(c for c in final.claims if c.parameter == "train.l2").n_runs == 9


def test_not_enough_runs_says_what_would_be_enough_and_which_setting(tmp_path, store):
    log_runs(store, pruned_at={i: 1 for i in range(10)})
    result, _ = report_page(tmp_path, store)
    l2 = next(c for c in result.claims if c.parameter == "train.l2")
    assert l2.verdict == TOO_FEW
    assert "A trend needs at least 2 values of train.l2" in l2.sentence
    assert "10 run(s) were left out" in l2.sentence
    assert "search.parameters.seed.choices" in l2.sentence and "search.n_trials" in l2.sentence


def test_runs_logged_before_the_clean_gap_have_no_gap_and_the_report_says_why(tmp_path, store):
    log_runs(store, clean=False)
    frame = runs_frame(report_source(store))
    assert not frame["clean_gap"].any()
    assert frame["final_gap_accuracy"].isna().all() if "final_gap_accuracy" in frame else True
    _, html = report_page(tmp_path, store)
    assert "12 run(s) were logged before the clean gap (no train_* metrics): their gaps are left out" in html


@settings(deadline=None)
@given(st.lists(st.sampled_from(["0", "0.0", 0, 0.0, "0.001", 0.001, "1e-3", "16", 16, "128"]), min_size=1))
def test_canonical_values_are_one_level_per_number(values):
    column = canonical_column(pd.Series(values, dtype=object))
    labels = {value_label(v) for v in column}
    numbers = {float(v) for v in values}
    assert len(labels) == len(numbers)
    ordered = ordered_values(values)
    assert [float(v) for v in ordered] == sorted(numbers)


@settings(deadline=None)
@given(st.floats(1e-6, 1e3), st.floats(1.01, 1e4))
def test_log_ticks_are_few_inside_the_range_and_three_digits(low, factor):
    ticks, text = log_ticks(low, low * factor)
    assert 1 <= len(ticks) <= 8 and ticks == sorted(ticks)
    assert len(ticks) >= 2 or factor < 1.1  # one tick only where 3 digits cannot tell the ends apart
    assert all(low * 0.999 <= t <= low * factor * 1.001 for t in ticks)
    assert all(_significant(t) <= 3 for t in text)


@settings(deadline=None)
@given(st.lists(st.floats(1e-5, 1e-1), min_size=2, max_size=40, unique=True))
def test_heat_map_cells_of_a_continuous_parameter_are_at_most_six_ordered_ranges(values):
    cells, order = grid_cells(pd.Series(values), ParamScale("log"))
    assert set(cells) <= set(order) and len(order) <= 6
    lows = [float(c.split("–")[0]) for c in order]
    assert lows == sorted(lows)
