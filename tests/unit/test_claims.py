"""Claims and their statistics, on synthetic runs frames with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import cnnkeras
from cnnkeras.analysis.claims import (
    CONTRADICTED,
    NOISE,
    SUPPORTED,
    TOO_FEW,
    ParamScale,
    evaluate_claim,
    param_scales,
    setting_summary,
)
from cnnkeras.analysis.stats import mean_ci, trend
from cnnkeras.config.errors import ConfigError
from cnnkeras.config.schema import Claim

LRS = [1e-4, 1e-3, 1e-2, 1e-1]
BATCHES = [16, 128]
SEEDS = [0, 1, 2]


def test_mean_ci_matches_the_t_table():
    ci = mean_ci([1.0, 2.0, 3.0])  # s = 1, t(0.975, 2) = 4.3027
    assert ci.mean == 2.0 and ci.n == 3
    assert ci.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    one = mean_ci([0.5, float("nan")])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.low)
    with pytest.raises(ValueError, match="Received: confidence=1.5"):
        mean_ci([1, 2], confidence=1.5)


def test_trend_recovers_a_known_slope_with_a_covariate():
    rng = np.random.default_rng(0)
    x = np.repeat(np.arange(5.0), 8)
    z = np.tile([0.0, 1.0], 20)
    y = 0.5 - 0.03 * x + 0.2 * z + rng.normal(0, 0.01, len(x))
    fit = trend(x, y, z[:, None])
    assert fit.low < -0.03 < fit.high and fit.significant and fit.p_value < 1e-6
    assert fit.residual_std == pytest.approx(0.01, rel=0.4)
    exact = trend([1, 2, 3], [2, 4, 6])  # a perfect line: zero-width interval
    assert exact.slope == pytest.approx(2) and exact.low == pytest.approx(2)
    flat = trend([1, 1, 1], [1, 2, 3])  # x never varies: no slope at all
    assert math.isnan(flat.slope)


def _frame(effect_lr: float, effect_batch: float = 0.0, noise: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Finished runs on an lr x batch x seed grid: gap = 0.2 + effect_lr*log2(lr) + effect_batch*log2(batch)."""
    rng = np.random.default_rng(seed)
    rows = []
    for lr in LRS:
        for batch in BATCHES:
            for s in SEEDS:
                gap = 0.2 + effect_lr * math.log2(lr) + effect_batch * math.log2(batch) + rng.normal(0, noise)
                rows.append({"run_id": f"{lr}-{batch}-{s}", "run_name": f"r{len(rows)}", "status": "FINISHED",
                             "trial_state": "COMPLETE", "param.train.optimizer.learning_rate": lr,
                             "param.train.batch_size": batch, "param.seed": s, "final_gap_accuracy": gap,
                             "best_val_accuracy": 0.9 - gap / 2})
    return pd.DataFrame(rows)


SCALES = {"train.optimizer.learning_rate": ParamScale("log"), "train.batch_size": ParamScale("log"),
          "seed": ParamScale("levels", (0, 1, 2))}
SMALL_LR_OVERFITS = Claim(claim="small learning rates overfit more", parameter="train.optimizer.learning_rate",
                          measure="final_gap_accuracy", expect="decreasing")


def test_a_real_effect_in_the_expected_direction_is_supported():
    result = evaluate_claim(_frame(effect_lr=-0.01, effect_batch=0.02), SMALL_LR_OVERFITS, SCALES)
    assert result.verdict == SUPPORTED
    assert result.low < -0.01 < result.high  # the true slope per doubling
    assert result.n_runs == 24 and result.n_values == 4 and result.n_replicates == 3
    assert result.covariates == ["train.batch_size"]  # held fixed; seed is a replicate, never a covariate
    assert "per doubling of learning_rate" in result.sentence and "95% CI" in result.sentence


def test_the_opposite_effect_is_contradicted_and_no_effect_is_noise():
    assert evaluate_claim(_frame(effect_lr=+0.01), SMALL_LR_OVERFITS, SCALES).verdict == CONTRADICTED
    noise = evaluate_claim(_frame(effect_lr=0.0, noise=0.05, seed=3), SMALL_LR_OVERFITS, SCALES)
    assert noise.verdict == NOISE and noise.low < 0 < noise.high


def test_pruned_and_failed_runs_are_left_out_and_too_few_runs_say_so():
    frame = _frame(effect_lr=-0.01)
    frame.loc[frame.index[:20], "trial_state"] = "PRUNED"
    result = evaluate_claim(frame, SMALL_LR_OVERFITS, SCALES)
    assert result.n_runs == 4
    two = frame.iloc[:2].assign(trial_state="COMPLETE")
    assert evaluate_claim(two, SMALL_LR_OVERFITS, SCALES).verdict == TOO_FEW


def test_a_categorical_claim_uses_the_levels_order():
    rows = [{"run_id": str(i), "run_name": str(i), "status": "FINISHED", "trial_state": "COMPLETE",
             "param.model.batch_norm": "True" if aug else "False", "param.seed": s,
             "final_gap_accuracy": (0.05 if aug else 0.15) + 0.005 * s}
            for i, (aug, s) in enumerate((a, s) for a in (False, True) for s in range(4))]
    claim = Claim(claim="batch norm narrows the gap", parameter="model.batch_norm", measure="final_gap_accuracy",
                  expect="decreasing", levels=[False, True])
    result = evaluate_claim(pd.DataFrame(rows), claim, {"seed": ParamScale("levels", (0, 1, 2, 3))})
    assert result.verdict == SUPPORTED and result.slope == pytest.approx(-0.10)
    assert "changes by -0.1000 from model.batch_norm=False to True" in result.sentence


def test_setting_summary_groups_seeds_into_mean_and_ci():
    table = setting_summary(_frame(effect_lr=-0.01), ["train.optimizer.learning_rate", "train.batch_size", "seed"],
                            ["final_gap_accuracy"])
    assert len(table) == 8 and set(table["n"]) == {3}
    assert (table["final_gap_accuracy_low"] < table["final_gap_accuracy_mean"]).all()


def test_importances_for_accuracy_and_gap_find_the_parameter_that_matters():
    from cnnkeras.studies.importance import frame_importances

    frame = _frame(effect_lr=-0.03, noise=0.001)
    found = frame_importances(frame, SCALES, {"gap": "final_gap_accuracy", "accuracy": "best_val_accuracy"})
    assert set(found) == {"gap", "accuracy"}
    assert max(found["gap"], key=found["gap"].get) == "train.optimizer.learning_rate"


def test_param_scales_and_report_config_errors(write_config):
    path = write_config(
        """
        name: claims
        data: {source: digits}
        search:
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
            train.batch_size: {type: categorical, choices: [16, 64, 256]}
            data.augmentation.flip: {type: categorical, choices: [none, horizontal]}
        report:
          color_by: train.batch_sise
          claims:
            - {claim: x, parameter: train.optimizer.learning_rte, expect: decreasing}
            - {claim: y, parameter: train.batch_size, expect: increasing, levels: [16, 64]}
        """)
    with pytest.raises(ConfigError) as caught:
        cnnkeras.load_config(path)
    text = str(caught.value)
    assert f"{path}:9: report.color_by: 'train.batch_sise' is not one of search.parameters" in text
    assert "did you mean 'train.batch_size'?" in text
    assert f"{path}:11: report.claims[0].parameter" in text and "did you mean 'train.optimizer.learning_rate'" in text
    assert f"{path}:12: report.claims[1].levels: levels must list every choice of train.batch_size once" in text


def test_param_scales_follow_the_search_space(write_config):
    config = cnnkeras.load_config(write_config(
        """
        name: scales
        data: {source: digits}
        search:
          parameters:
            train.optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
            train.batch_size: {type: categorical, choices: [16, 64, 256]}
            model.dropout: {type: categorical, choices: [0.0, 0.25, 0.5]}
            data.augmentation.flip: {type: categorical, choices: [none, horizontal]}
        """))
    scales = param_scales(config)
    assert scales["train.optimizer.learning_rate"].kind == "log" and scales["train.batch_size"].kind == "log"
    assert scales["model.dropout"].kind == "linear"
    assert scales["data.augmentation.flip"] == ParamScale("levels", ("none", "horizontal"))


def test_a_claim_can_be_limited_to_a_range_of_its_parameter():
    frame = _frame(effect_lr=-0.01)
    high = frame["param.train.optimizer.learning_rate"] >= 1e-2
    frame.loc[high, "final_gap_accuracy"] = 0.0  # "diverged" runs at chance: no gap
    limited = SMALL_LR_OVERFITS.model_copy(update={"range": (1e-4, 1e-2)})
    result = evaluate_claim(frame, limited, SCALES)
    assert result.n_values == 3 and result.n_runs == 18 and result.verdict == SUPPORTED
    assert "for learning_rate in [0.0001, 0.01]" in result.sentence


def test_the_claim_figure_fades_runs_outside_the_range_and_averages_only_inside():
    from cnnkeras.reporting.study_figures import claim_figure

    frame = _frame(effect_lr=-0.01)
    limited = SMALL_LR_OVERFITS.model_copy(update={"range": (1e-4, 1e-2)})
    result = evaluate_claim(frame, limited, SCALES)
    fig = claim_figure(frame, result, SCALES["train.optimizer.learning_rate"])
    traces = {t.name: t for t in fig.data}
    assert sorted(traces["run"].x) == sorted(v for v in frame["param.train.optimizer.learning_rate"] if v <= 1e-2)
    assert set(traces["run outside the claim's range"].x) == {1e-1}
    assert traces["run outside the claim's range"].marker.opacity < 1
    mean = next(t for t in fig.data if t.name.startswith("mean"))
    assert sorted(set(mean.x)) == [1e-4, 1e-3, 1e-2]
    unlimited = claim_figure(frame, evaluate_claim(frame, SMALL_LR_OVERFITS, SCALES),
                             SCALES["train.optimizer.learning_rate"])
    assert [t.name for t in unlimited.data][0] == "run" and len(unlimited.data) == 2
