"""Level and optimum claims, on synthetic runs frames with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cnnkeras.analysis.claims import CONTRADICTED, NOISE, SUPPORTED, TOO_FEW, ParamScale, SweepContext, evaluate_claim
from cnnkeras.config import ConfigError, config_from_dict
from cnnkeras.config.schema import Claim

NOISES = [0.0, 0.5, 1.0]


def _noise_frame(test_at_one=(0.10, 0.11, 0.09)) -> pd.DataFrame:
    rows = []
    for noise in NOISES:
        for seed in range(3):
            test = test_at_one[seed] if noise == 1.0 else 0.95 - 0.3 * noise
            rows.append({"run_id": f"{noise}-{seed}", "run_name": f"r{len(rows)}", "status": "FINISHED",
                         "trial_state": "COMPLETE", "param.data.label_noise": noise, "param.seed": seed,
                         "final_train_accuracy": 0.99 + 0.003 * seed, "test_accuracy": test,
                         "epochs_to_fit": 3 + 40 * noise + seed})
    return pd.DataFrame(rows)


SCALES = {"data.label_noise": ParamScale("linear", tuple(NOISES)), "seed": ParamScale("levels", (0, 1, 2))}


def test_a_level_claim_reads_the_interval_at_one_value():
    memorized = Claim(claim="random labels are memorized", parameter="data.label_noise", at=1.0,
                      measure="final_train_accuracy", expect="above", value=0.95)
    result = evaluate_claim(_noise_frame(), memorized, SCALES)
    assert result.verdict == SUPPORTED and result.n_runs == 3 and result.mean == pytest.approx(0.993)
    assert "final_train_accuracy at data.label_noise=1 is 0.9930" in result.sentence
    assert "the claim: above 0.95" in result.sentence
    chance = Claim(claim="test at chance", parameter="data.label_noise", at=1.0, measure="test_accuracy",
                   expect="near", value=0.1, tolerance=0.05)
    assert evaluate_claim(_noise_frame(), chance, SCALES).verdict == SUPPORTED
    assert evaluate_claim(_noise_frame((0.5, 0.52, 0.48)), chance, SCALES).verdict == CONTRADICTED
    wide = evaluate_claim(_noise_frame((0.02, 0.2, 0.11)), chance, SCALES)  # an interval wider than the band
    assert wide.verdict == NOISE and wide.low < 0.05 and wide.high > 0.15
    below = Claim(claim="x", parameter="data.label_noise", at=0.0, measure="test_accuracy", expect="below", value=0.5)
    assert evaluate_claim(_noise_frame(), below, SCALES).verdict == CONTRADICTED


def test_a_level_claim_with_one_run_says_it_needs_two():
    frame = _noise_frame().iloc[[0, 3, 6]]
    claim = Claim(claim="x", parameter="data.label_noise", at=1.0, measure="test_accuracy", expect="near",
                  value=0.1, tolerance=0.05)
    result = evaluate_claim(frame, claim, SCALES)
    assert result.verdict == TOO_FEW and "A level needs at least 2 runs at data.label_noise=1 (it has 1)" in result.sentence


def test_a_trend_claim_on_epochs_to_fit():
    claim = Claim(claim="time to fit grows", parameter="data.label_noise", measure="epochs_to_fit", expect="increasing")
    result = evaluate_claim(_noise_frame(), claim, SCALES)
    assert result.verdict == SUPPORTED and result.slope == pytest.approx(40)


def _lr_frame(exponent: float, seeds=(0, 1)) -> pd.DataFrame:
    """Best val accuracy peaks at lr* = 0.01 * (batch / 16) ** exponent, on a grid of rates."""
    rows = []
    rates = [0.01 * 2 ** k for k in range(8)]
    for batch in (16, 64, 256):
        best = 0.01 * (batch / 16) ** exponent
        for lr in rates:
            for seed in seeds:
                score = 0.95 - 0.02 * (math.log2(lr) - math.log2(best)) ** 2 + 0.001 * seed
                rows.append({"run_id": f"{batch}-{lr}-{seed}", "run_name": "r", "status": "FINISHED",
                             "trial_state": "COMPLETE", "param.train.batch_size": batch,
                             "param.train.optimizer.learning_rate": lr, "param.seed": seed,
                             "best_val_accuracy": score, "final_val_loss": 1 - score})
    return pd.DataFrame(rows)


LR_SCALES = {"train.batch_size": ParamScale("log", (16, 64, 256)),
             "train.optimizer.learning_rate": ParamScale("log", tuple(0.01 * 2 ** k for k in range(8))),
             "seed": ParamScale("levels", (0, 1))}


def test_an_optimum_claim_recovers_linear_scaling_and_its_exponent():
    claim = Claim(claim="best lr grows with the batch", parameter="train.batch_size",
                  optimum_of="train.optimizer.learning_rate", measure="best_val_accuracy", expect="increasing")
    result = evaluate_claim(_lr_frame(1.0), claim, LR_SCALES)
    assert result.kind == "optimum" and result.verdict == SUPPORTED
    assert result.slope == pytest.approx(1.0) and result.n_runs == 6 and result.n_values == 3
    assert [float(lr) for _, lr in result.optima] == [0.01, 0.01, 0.04, 0.04, 0.16, 0.16]
    assert "the exponent: 1 is linear scaling" in result.sentence
    flat = evaluate_claim(_lr_frame(0.0), claim, LR_SCALES)
    assert flat.slope == pytest.approx(0.0) and flat.verdict != SUPPORTED
    # a loss is best when lowest
    by_loss = claim.model_copy(update={"measure": "final_val_loss"})
    assert evaluate_claim(_lr_frame(1.0), by_loss, LR_SCALES).slope == pytest.approx(1.0)


def test_not_enough_runs_names_the_setting_to_change():
    frame = _lr_frame(1.0, seeds=(0,))
    frame = frame[frame["param.train.batch_size"] == 16]
    claim = Claim(claim="best lr grows", parameter="train.batch_size", optimum_of="train.optimizer.learning_rate",
                  measure="best_val_accuracy", expect="increasing")
    config = config_from_dict({"name": "x", "search": {"sampler": {"name": "grid"}, "parameters": {
        "train.batch_size": {"type": "categorical", "choices": [16, 64]},
        "seed": {"type": "categorical", "choices": [0]}}}})
    result = evaluate_claim(frame, claim, LR_SCALES, context=SweepContext.of(config))
    assert result.verdict == TOO_FEW
    assert "A trend needs at least 2 values of train.batch_size" in result.sentence
    assert "search.parameters.seed.choices" in result.sentence and "grid's size" in result.sentence


@pytest.mark.parametrize("claim, message", [
    ({"expect": "above", "at": 1.0}, "expect: above needs value"),
    ({"expect": "near", "at": 1.0, "value": 0.1}, "expect: near needs tolerance"),
    ({"expect": "increasing", "value": 0.1}, "value are for level claims"),
    ({"expect": "increasing", "optimum_of": "data.label_noise"}, "optimum_of must be another swept parameter"),
    ({"expect": "above", "at": 0.3, "value": 0.5}, "0.3 is not one of data.label_noise's choices"),
    ({"expect": "increasing", "optimum_of": "train.l2"}, "'train.l2' is not one of search.parameters"),
])
def test_claim_kinds_are_checked_in_the_config(claim, message):
    raw = {"name": "x", "search": {"parameters": {
        "data.label_noise": {"type": "categorical", "choices": [0.0, 1.0]},
        "seed": {"type": "categorical", "choices": [0, 1]}}},
        "report": {"claims": [{"claim": "c", "parameter": "data.label_noise", "measure": "test_accuracy", **claim}]}}
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert any(message in str(issue) for issue in info.value.issues), info.value.issues


def test_a_sweep_with_claims_prunes_nothing_unless_asked():
    base = {"name": "x", "search": {"parameters": {"seed": {"type": "categorical", "choices": [0, 1]}}}}
    claims = {"report": {"claims": [{"claim": "c", "parameter": "seed", "expect": "increasing"}]}}
    assert config_from_dict({**base, **claims}).search.pruner.name == "none"
    assert config_from_dict(base).search.pruner.name == "median"
    asked = {**base, "search": {**base["search"], "pruner": {"name": "median"}}, **claims}
    assert config_from_dict(asked).search.pruner.name == "median"
