"""Hand-built MLflow runs with known gaps, for report tests that need no training.

:func:`log_runs` writes runs into a real SQLite MLflow store through MLflow's own client,
as cnnkeras would log them (params as text, per-epoch metrics with steps, a summary),
with the values a test chooses; :func:`report_source` is the matching
:class:`~cnnkeras.analysis.source.RunSource` with a sweep config and claims.
:func:`figures` reads the plotly figures back out of a report's HTML.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from cnnkeras.analysis.source import RunSource
from cnnkeras.config import config_from_dict

EXPERIMENT = "handmade"

CONFIG = {
    "name": EXPERIMENT,
    "seed": 0,
    "search": {
        "sampler": {"name": "grid"},
        "parameters": {
            "train.l2": {"type": "categorical", "choices": [0.0, 0.001]},
            "train.batch_size": {"type": "categorical", "choices": [16, 64, 256]},
            "train.optimizer.learning_rate": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
            "seed": {"type": "categorical", "choices": [0, 1]},
        },
    },
    "report": {"claims": [
        {"claim": "L2 narrows the gap", "parameter": "train.l2", "measure": "final_gap_accuracy",
         "expect": "decreasing", "levels": [0.0, 0.001]},
        {"claim": "Large batches overfit more", "parameter": "train.batch_size", "measure": "final_gap_accuracy",
         "expect": "increasing"},
    ]},
}

#: Sampled learning rates, one per run: awkward numbers, as a TPE sampler draws them.
RATES = [0.0007614, 0.00012345, 0.0031416, 0.0074213, 0.012345, 0.021212, 0.00027183, 0.0016180, 0.0044444,
         0.0099999, 0.015151, 0.0005432]


def gap_of(l2: float, batch: int, seed: int) -> float:
    """The final gap each run is given: L2 lowers it by 0.1, each 4x of batch raises it by 0.04."""
    return 0.2 - 100 * l2 + 0.02 * math.log2(batch / 16) + 0.004 * (seed - 0.5)


def log_runs(uri: str, *, epochs: int = 3, clean: bool = True, pruned_at: dict[int, int] | None = None
             ) -> list[str]:
    """The 12 runs of the grid l2 x batch x seed; ``train.l2`` logged as "0" for seed 0 and "0.0" for seed 1
    (MLflow's text, as two runs of one value can leave it). ``clean=False``: logged as before the clean gap
    (Keras' running accuracy and its gap only). ``pruned_at``: run index -> the epoch it was pruned at."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    ids = []
    pruned_at = pruned_at or {}
    index = 0
    for l2 in (0.0, 0.001):
        for batch in (16, 64, 256):
            for seed in (0, 1):
                gap = gap_of(l2, batch, seed)
                run_epochs = pruned_at.get(index, epochs)
                state = "PRUNED" if index in pruned_at else "COMPLETE"
                run = client.create_run(experiment_id, run_name=f"trial-{index}",
                                        tags={"cnnkeras.trial_state": state, "cnnkeras.trial_number": str(index)})
                l2_text = ("0" if seed == 0 else "0.0") if l2 == 0 else str(l2)
                params = {"train.l2": l2_text, "train.batch_size": str(batch), "seed": str(seed),
                          "train.optimizer.learning_rate": repr(RATES[index]), "train.monitor": "val_loss",
                          "data.n_train": "1000"}
                for key, value in params.items():
                    client.log_param(run.info.run_id, key, value)
                for epoch in range(1, run_epochs + 1):
                    share = epoch / epochs  # the gap opens as training goes on
                    val = 0.6 + 0.3 * share - gap * share / 2
                    train = val + gap * share
                    metrics = {"val_accuracy": val, "accuracy": train - 0.05, "loss": 1.0 - 0.5 * share,
                               "val_loss": 1.1 - 0.4 * share}
                    if clean:
                        metrics.update({"train_accuracy": train, "train_loss": 1.0 - 0.6 * share,
                                        "gap_accuracy": gap * share})
                    else:
                        metrics["gap_accuracy"] = (train - 0.05) - val  # the old, running-metric gap
                    for key, value in metrics.items():
                        client.log_metric(run.info.run_id, key, value, step=epoch)
                client.log_metric(run.info.run_id, "best_epoch", float(run_epochs))
                client.log_metric(run.info.run_id, "test_accuracy", 0.9 - gap / 2)
                client.set_terminated(run.info.run_id, "FINISHED")
                ids.append(run.info.run_id)
                index += 1
    return ids


def report_source(uri: str, **report: Any) -> RunSource:
    """The report's source: the runs of the experiment, with the sweep config (and ``report`` settings)."""
    raw = json.loads(json.dumps(CONFIG))
    raw["report"].update(report)
    return RunSource(EXPERIMENT, EXPERIMENT, uri, config=config_from_dict(raw))


def figures(html: str) -> list[dict[str, Any]]:
    """Every plotly figure of a report page, as the JSON the page draws."""
    blocks = re.findall(r'<script type="application/json" id="data-f\d+">(.*?)</script>', html, flags=re.S)
    return [json.loads(block) for block in blocks]


def titled(figs: Iterable[dict[str, Any]], title: str) -> dict[str, Any]:
    """The figure whose title starts with ``title``."""
    for fig in figs:
        text = fig["layout"].get("title", {}).get("text", "")
        if text.startswith(title):
            return fig
    raise AssertionError(f"no figure titled {title!r}")


def report_page(tmp: Path, uri: str, **report: Any) -> tuple[Any, str]:
    import cnnkeras

    result = cnnkeras.report(report_source(uri, **report), out=tmp / "report.html", log_to_parent=False)
    return result, result.path.read_text(encoding="utf-8")
