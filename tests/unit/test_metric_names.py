"""Metric names at the MLflow boundary: one pair of functions, exact both ways (cnnkeras.tracking.names)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkeras.measures import final_gaps, gap_metrics, summarize
from cnnkeras.tracking.names import SECTIONS, from_mlflow, to_mlflow

MEASURES = ("loss", "accuracy", "data_loss", "mae", "mean_iou", *(f"iou_{k}" for k in range(12)))
#: Every per-epoch name a classification, regression or segmentation run records (issue 23's train_* included).
PER_EPOCH = [*MEASURES, *(f"val_{m}" for m in MEASURES), *(f"train_{m}" for m in MEASURES),
             "gap_accuracy", "gap_loss", "gap_mae", "gap_mean_iou", "learning_rate", "epoch_time_s"]


def produced_names() -> list[str]:
    """Every metric name cnnkeras logs: per-epoch records, gaps, the summary, test, a sweep's parent run."""
    history = {key: [0.5, 0.4] for key in PER_EPOCH}
    history.update({key: [0.1, 0.2] for key in gap_metrics({k: 0.5 for k in PER_EPOCH})})
    summary = summarize(history, 1, {f"test_{m}": 0.5 for m in MEASURES})
    summary["train_time_s"] = 3.0
    parent = {f"trials_{s}": 1.0 for s in ("complete", "pruned", "fail", "running", "waiting")}
    parent.update({"sweep_time_s": 1.0, "importance.best_val_accuracy.train.batch_size": 0.3,
                   "importance.final_gap_accuracy.seed": 0.1})
    return sorted({*history, *summary, *final_gaps(history), *parent})


def test_every_name_cnnkeras_logs_maps_to_a_section_and_back():
    names = produced_names()
    assert len(names) > 150
    mapped = {key: to_mlflow(key) for key in names}
    assert len(set(mapped.values())) == len(names)  # no two metrics share an MLflow name
    for key, name in mapped.items():
        assert "/" in name, key  # every metric lands in a section, none in the long unnamed one
        assert from_mlflow(name) == key


def test_training_validation_and_gap_of_one_measure_share_a_section():
    assert [to_mlflow(k) for k in ("accuracy", "train_accuracy", "val_accuracy", "gap_accuracy")] == \
        ["accuracy/train_running", "accuracy/train", "accuracy/val", "accuracy/gap"]
    assert [to_mlflow(k) for k in ("loss", "val_loss", "gap_loss", "data_loss", "val_data_loss")] == \
        ["loss/train_running", "loss/val", "loss/gap", "data_loss/train_running", "data_loss/val"]
    assert [to_mlflow(k) for k in ("mean_iou", "val_mean_iou", "gap_mean_iou")] == \
        ["mean_iou/train_running", "mean_iou/val", "mean_iou/gap"]
    assert to_mlflow("val_iou_3") == "iou/class_3_val" and to_mlflow("iou_10") == "iou/class_10_train_running"


def test_summaries_test_scores_and_sweep_figures_sit_apart():
    assert to_mlflow("best_val_accuracy") == "summary/best_val_accuracy"
    assert to_mlflow("final_gap_accuracy") == "summary/final_gap_accuracy"
    assert to_mlflow("best_epoch") == "summary/best_epoch" and to_mlflow("epochs_run") == "summary/epochs_run"
    assert to_mlflow("test_accuracy") == "test/accuracy" and to_mlflow("test_mean_iou") == "test/mean_iou"
    assert to_mlflow("trials_complete") == "sweep/trials_complete"
    assert to_mlflow("importance.best_val_accuracy.seed") == "importance/best_val_accuracy.seed"
    assert to_mlflow("learning_rate") == "optimizer/learning_rate"


def test_runs_logged_under_the_old_names_read_the_same():
    for key in produced_names():
        assert from_mlflow(key) == key


identifiers = st.from_regex(r"[a-z][a-z0-9_.]{0,24}", fullmatch=True)
prefixed = st.tuples(st.sampled_from(["", "val_", "gap_", "train_", "best_", "final_", "best_val_", "final_gap_",
                                      "test_", "trials_", "importance.", *(f"{s}_" for s in SECTIONS)]),
                     st.one_of(identifiers, st.sampled_from([*SECTIONS, *MEASURES, "", "_", "running"]))
                     ).map("".join).filter(bool)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(identifiers, prefixed))
def test_any_internal_name_round_trips(key):
    assert from_mlflow(to_mlflow(key)) == key


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(identifiers, prefixed), min_size=2, max_size=6, unique=True))
def test_distinct_names_stay_distinct(keys):
    assert len({to_mlflow(k) for k in keys}) == len(keys)
