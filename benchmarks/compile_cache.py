"""What JAX's persistent compilation cache saves a run: ``cnnkeras run --backend jax``
of the quickstart (LeNet-5 on digits, 8 epochs with early stopping) as whole processes,
without the cache (``CNNKERAS_COMPILE_CACHE=off``), with an empty cache (the first run,
which fills it) and with the filled cache (every later run of the same model and shapes).
Alternating rounds; medians of wall and CPU seconds.

    .venv/bin/python benchmarks/compile_cache.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import median, run_process, save

ROOT = Path(__file__).resolve().parents[1]
CNNKERAS = str(Path(sys.executable).with_name("cnnkeras"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default=str(ROOT / "experiments" / "quickstart.yaml"))
    args = parser.parse_args()
    command = [CNNKERAS, "run", args.config, "-q", "--backend", "jax"]
    rows: dict[str, list[dict]] = {"off": [], "empty": [], "filled": []}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / ".cnnkeras-cache"
        run_process(command + ["train.epochs=1"], cwd=tmp, env={"CNNKERAS_COMPILE_CACHE": "off"})  # the store
        for rep in range(args.repeats):
            for case in ("off", "empty", "filled"):
                if case == "empty":
                    shutil.rmtree(cache, ignore_errors=True)
                done = run_process(command, cwd=tmp, env={"CNNKERAS_COMPILE_CACHE": "off" if case == "off" else "on"})
                if done["returncode"] != 0:
                    raise SystemExit(done["output"])
                rows[case].append({k: done[k] for k in ("wall_s", "cpu_s")})
                print(f"rep {rep} cache {case:6s} wall {done['wall_s']:6.2f}s  cpu {done['cpu_s']:6.2f}s", flush=True)
        entries = sum(1 for _ in (cache / "jax").iterdir()) if (cache / "jax").exists() else 0
    summary = {case: {k: median([r[k] for r in rows[case]]) for k in ("wall_s", "cpu_s")} for case in rows}
    saved = {k: summary["off"][k] - summary["filled"][k] for k in ("wall_s", "cpu_s")}
    print(f"filled cache saves {saved['wall_s']:.1f} s wall and {saved['cpu_s']:.1f} CPU s a run "
          f"({summary['filled']['wall_s']:.1f} s against {summary['off']['wall_s']:.1f} s without; "
          f"the run that fills it: {summary['empty']['wall_s']:.1f} s); {entries} cached programs")
    save("compile_cache_jax_cpu", {"args": vars(args), "runs": rows, "median": summary, "saved": saved,
                                  "cached_programs": entries}, backend="jax")


if __name__ == "__main__":
    main()
