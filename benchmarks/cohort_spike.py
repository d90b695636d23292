"""Issue 15's first question, measured: does training K trials as one vectorized JAX program
beat K programs one after another, on this CPU (and on a GPU when one is lent)?

One LeNet-5 training step (forward, backward, Adam) through Keras' stateless API
(``model.stateless_call``, ``optimizer.stateless_apply``), jitted once:

- alone: ``jit(step)`` on one member's state and its batch of 128;
- a cohort of K, vectorized: ``jit(vmap(step))`` over K stacked states (each member its own
  weights, optimizer state and learning rate, which lives in the optimizer's variables)
  and K batches (each member its own shuffling);
- a cohort of K, unrolled: one ``jit`` of the K members' steps side by side (no batching
  dimension: XLA schedules K independent step graphs in one program, one dispatch).

Member-steps per second for K in --cohorts, each timed after compilation (the median of
--rounds windows of --steps steps), with the compile time of each program. No cnnkeras
code path uses this yet: it is the measurement the cohort design starts from.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/cohort_spike.py [--cohorts 1 2 4 8 16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from common import save  # noqa: E402

BATCH = 128


def make_step(model: keras.Model, optimizer: keras.optimizers.Optimizer):
    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def compute_loss(trainable, non_trainable, x, y):
        y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_fn(y, y_pred), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    def step(state, x, y):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, x, y)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return (trainable, non_trainable, opt_vars), loss

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohorts", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=["vmap", "unrolled"], default="vmap")
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax")
    from cnnkeras.zoo import build_model

    model = build_model("lenet5", input_shape=(28, 28, 1), num_classes=10)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    step = make_step(model, optimizer)
    one = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
           [v.value for v in optimizer.variables])
    rng = np.random.default_rng(0)
    rows = []
    for k in args.cohorts:
        x = jnp.asarray(rng.random((k, BATCH, 28, 28, 1), dtype=np.float32))
        y = jnp.asarray(rng.integers(0, 10, (k, BATCH)))
        if k == 1:
            program, state, xs, ys = jax.jit(step), one, x[0], y[0]
        elif args.mode == "vmap":
            program = jax.jit(jax.vmap(step))
            state = jax.tree_util.tree_map(lambda v, k=k: jnp.stack([v] * k), one)
            xs, ys = x, y
        else:
            def unrolled(states, xs, ys):
                outs = [step(s, xs[i], ys[i]) for i, s in enumerate(states)]
                return [o[0] for o in outs], jnp.stack([o[1] for o in outs])

            program, state, xs, ys = jax.jit(unrolled), [one] * k, x, y
        start = time.perf_counter()
        state, loss = program(state, xs, ys)
        jax.block_until_ready(loss)
        compile_s = time.perf_counter() - start
        windows = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.steps):
                state, loss = program(state, xs, ys)
            jax.block_until_ready(loss)
            windows.append(time.perf_counter() - start)
        per_step = statistics.median(windows) / args.steps
        rows.append({"cohort": k, "compile_s": compile_s, "step_s": per_step, "member_steps_per_s": k / per_step})
        base = rows[0]["member_steps_per_s"]
        print(f"cohort {k:3d}: compile {compile_s:5.2f} s, step {per_step * 1000:7.2f} ms, "
              f"{k / per_step:7.1f} member-steps/s ({k / per_step / base:.2f}x alone)", flush=True)
    device = jax.devices()[0]
    save(f"cohort_spike_{args.mode}_jax_{device.platform}", {"args": vars(args), "device": getattr(device, "device_kind", ""),
                                                 "rows": rows}, backend="jax")


if __name__ == "__main__":
    main()
