"""Choose a cohort size by measuring it: whether training trials together pays is a property
of the machine, the backend and the model, not a rule.

For each size k in 1, 2, 4, ... up to the largest asked for, :func:`measure_cohort_sizes`
builds k members from the sweep's first configs, compiles their cohort and times its
first train step (tracing and compiling) and a few more (the step itself). A trial
then costs about ``(compile + steps * step) / k`` seconds, ``steps`` being its batches
over all epochs; the size with the least is chosen. Larger sizes are not tried once
doubling the size saves less than 10% per trial (each size tried costs a compilation).

On this 2-core CPU with JAX, LeNet-5 members run about 1.5x more member-steps per
second in one program than alone (``benchmarks/cohort_spike.py``); TensorFlow or a
large model may measure less than 1x, and the sweep then runs one trial at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .config.schema import ExperimentConfig
from .runner import prepare
from .training.cohort import CohortModel, CohortOptimizer
from .training.compile import steps_per_epoch
from .training.fit import targets_of

__all__ = ["ProbeResult", "measure_cohort_sizes"]

#: Doubling the size must cut the time per trial below this fraction to try the next size.
GAIN = 0.9


@dataclass
class ProbeResult:
    """Measured seconds per trial for each size tried, and the chosen size."""

    size: int
    per_trial_s: dict[int, float] = field(default_factory=dict)
    compile_s: dict[int, float] = field(default_factory=dict)
    step_s: dict[int, float] = field(default_factory=dict)

    def line(self, backend: str) -> str:
        """One line for people: the choice and the figures behind it."""
        figures = ", ".join(f"{k}: {v:.1f} s" for k, v in self.per_trial_s.items())
        if self.size == 1:
            best = min((k for k in self.per_trial_s if k > 1), key=self.per_trial_s.get, default=None)
            ratio = f"; a cohort of {best} would take {self.per_trial_s[best] / self.per_trial_s[1]:.2f}x as long " \
                    "per trial" if best else ""
            return f"cohorts: one trial at a time on {backend}{ratio} (measured per trial: {figures})"
        return f"cohorts of {self.size} on {backend} (measured per trial: {figures})"


def _sizes(largest: int) -> list[int]:
    sizes, k = [], 1
    while k < largest:
        sizes.append(k)
        k *= 2
    return sizes + [largest]


def measure_cohort_sizes(configs: Sequence[ExperimentConfig], largest: int, *, steps: int = 5) -> ProbeResult:
    """Time cohorts of 1, 2, 4, ... ``largest`` members built from ``configs`` (cycled); see the module."""
    first = configs[0]
    train = first.train
    data, _ = prepare(first)
    batch = min(train.batch_size, len(data.x_train))
    x = data.x_train[:batch]
    y = targets_of(data, first)["train"][:batch]
    trial_steps = steps_per_epoch(len(data.x_train), train.batch_size) * train.epochs
    result = ProbeResult(size=1)
    previous: int | None = None
    for k in _sizes(largest):
        members = [prepare(configs[i % len(configs)], data)[1] for i in range(k)]
        cohort = CohortModel(members)
        cohort.compile(optimizer=CohortOptimizer([m.optimizer for m in members],
                                                 [len(m.trainable_variables) for m in members]))
        started = time.perf_counter()
        cohort.train_on_batch(x, y)
        compiled = time.perf_counter() - started
        timings = []
        for _ in range(steps):
            started = time.perf_counter()
            cohort.train_on_batch(x, y)  # returns host values: the step has finished
            timings.append(time.perf_counter() - started)
        step = float(np.median(timings))
        result.compile_s[k], result.step_s[k] = compiled, step
        result.per_trial_s[k] = (compiled + trial_steps * step) / k
        if previous is not None and result.per_trial_s[k] > GAIN * result.per_trial_s[previous]:
            break  # (nearly) no better than half the size: larger cohorts only cost more to try
        previous = k
    result.size = min(result.per_trial_s, key=result.per_trial_s.get)
    return result
