"""Helpers shared by the benchmark scripts: timing, medians and saving results as JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).resolve().parent / "results"
MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run_process(command: list[str], *, cwd: str | os.PathLike[str] | None = None,
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a whole process as a user would; its wall seconds, CPU seconds (user + system, its own
    children included), peak RSS in MB, exit code and output."""
    import subprocess

    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()  # until the child closes it; communicate() would reap the child first
    _, status, usage = os.wait4(process.pid, 0)  # the child's own resource usage
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    wall = time.perf_counter() - start
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "returncode": process.returncode, "output": output}


def median(values: list[float]) -> float:
    return statistics.median(values)


def alternating(commands: dict[str, list[str]], repeats: int, *, cwd: str | os.PathLike[str] | None = None,
                env: dict[str, str] | None = None, label: str = "{name}") -> dict[str, dict[str, float]]:
    """Run each command ``repeats`` times as whole processes, alternating their order every round (so a
    machine that slows down or speeds up touches both alike); print each run, stop on a failure, and
    return the medians of wall and CPU seconds per command."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}
    for rep in range(repeats):
        for name in (list(commands) if rep % 2 == 0 else list(commands)[::-1]):
            done = run_process(commands[name], cwd=cwd, env=env)
            if done["returncode"] != 0:
                raise SystemExit(done["output"])
            runs[name].append(done)
            print(f"{label.format(name=name)}: {done['wall_s']:.2f} s, {done['cpu_s']:.2f} CPU s", flush=True)
    return {name: {"wall_s": median([r["wall_s"] for r in values]), "cpu_s": median([r["cpu_s"] for r in values])}
            for name, values in runs.items()}


def save(name: str, payload: dict[str, Any], *, backend: str | None = None) -> Path:
    """Write ``results/NAME.json`` with the machine (and the backend measured, default Keras' own)."""
    if backend is None:
        import keras

        backend = keras.backend.backend()
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "backend": backend},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {path}")
    return path
