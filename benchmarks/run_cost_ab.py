"""A run's whole-process cost now against an earlier commit, and what tracking adds (issue 24).

``overhead.py`` compares cnnkeras with plain Keras, but its ratio moves with the machine's
state from day to day (1.05x CPU on 2026-12-02, 1.18-1.21x on 2026-12-06). This answers the
question behind it directly, side by side in one run, alternating order:

- ``now``: ``cnnkeras run`` of this checkout;
- ``then``: the same command and config on ``--commit`` (checked out in a temporary git
  worktree, run with this virtual environment), so a change in cnnkeras' own cost shows;
- ``untracked``: this checkout with ``tracking.enabled: false``: what MLflow itself costs
  (importing it, opening the store, the writes; done on a background thread during training).

Same LeNet-5 on an MNIST subset, without the extras the plain script lacks (training sample,
pictures). Medians of wall and CPU seconds.

    .venv/bin/python benchmarks/run_cost_ab.py [--commit b26629a] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from common import MNIST, alternating, save

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default="b26629a", help="the earlier commit (default: 2026-12-02's overhead run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        then = Path(tmp) / "then"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(then), args.commit],
                       check=True, capture_output=True)
        try:
            base = (f"name: ab\nseed: 0\ndata: {{source: npz, path: {MNIST}, subset: {args.subset}, "
                    f"validation_split: 0.1}}\nmodel: {{arch: lenet5}}\n"
                    f"train: {{epochs: {args.epochs}, batch_size: 128, optimizer: {{name: adam, "
                    f"learning_rate: 1.0e-3}}")
            (Path(tmp) / "then.yaml").write_text(base + "}\n")  # the earlier schema has no extras to turn off
            (Path(tmp) / "now.yaml").write_text(base + ", gap_sample: 0}\ntracking: {log_predictions: false}\n")
            (Path(tmp) / "untracked.yaml").write_text(base + ", gap_sample: 0}\ntracking: {enabled: false}\n")
            python = sys.executable

            def command(source: Path, config: str) -> list[str]:
                return ["env", f"PYTHONPATH={source}", python, "-m", "cnnkeras.cli", "run", str(Path(tmp) / config),
                        "-q"]

            commands = {"now": command(REPO, "now.yaml"), "then": command(then, "then.yaml"),
                        "untracked": command(REPO, "untracked.yaml")}
            for name, cmd in commands.items():  # warm-up: file cache, a store a second run finds
                alternating({name: cmd}, 1, cwd=tmp, label="warm-up {name}")
            medians = alternating(commands, args.repeats, cwd=tmp)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(then)], capture_output=True)
    now, earlier, untracked = medians["now"], medians["then"], medians["untracked"]
    ratios = {"now_vs_then": {k: now[k] / earlier[k] for k in ("wall_s", "cpu_s")},
              "tracking_cost_s": {k: now[k] - untracked[k] for k in ("wall_s", "cpu_s")}}
    print(f"now / {args.commit}: wall {ratios['now_vs_then']['wall_s']:.3f}x, CPU {ratios['now_vs_then']['cpu_s']:.3f}x "
          f"(medians {now['cpu_s']:.2f} vs {earlier['cpu_s']:.2f} CPU s)")
    print(f"tracking adds {ratios['tracking_cost_s']['cpu_s']:.2f} CPU s and {ratios['tracking_cost_s']['wall_s']:.2f} "
          "s of wall time to a run")
    save("run_cost_ab", {"args": vars(args), "medians": medians, **ratios})


if __name__ == "__main__":
    main()
