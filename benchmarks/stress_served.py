"""The distributed and served-stack tests, run again and again while both cores are kept busy (issue 24).

A test that fails only under load points at a race. This runs the chosen tests ``--rounds``
times in a row, each time with ``--hogs`` processes spinning on the CPU beside them (so the
sweep workers, PostgreSQL and the MLflow server fight for the two cores), and records each
round's outcome and time in ``benchmarks/results/stress_served.json``. The goal: every
round passes.

    .venv/bin/python benchmarks/stress_served.py [--rounds 10] [--hogs 2] [-k restart]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

from common import save

REPO = Path(__file__).resolve().parents[1]
TESTS = ["tests/integration/test_served_stack.py::test_database_restart_and_a_20_s_outage_lose_and_rerun_nothing",
         "tests/integration/test_served_stack.py::test_kill_9_of_a_worker_fails_its_trial_with_the_reason_and_requeues_it",
         "tests/integration/test_served_stack.py::test_three_workers_on_one_postgres_study_and_an_authenticated_server",
         "tests/integration/test_distributed.py",
         "tests/integration/test_cohorts.py::test_postgres_workers_run_cohorts_and_one_killed_mid_cohort_is_taken_over"]


def _spin(stop: multiprocessing.Event) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--hogs", type=int, default=2, help="busy processes beside the tests")
    parser.add_argument("-k", default=None, help="pytest -k expression, to run some of the tests")
    args = parser.parse_args()
    rounds = []
    for number in range(1, args.rounds + 1):
        stop = multiprocessing.Event()
        hogs = [multiprocessing.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.hogs)]
        for hog in hogs:
            hog.start()
        started = time.time()
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS,
                   *(["-k", args.k] if args.k else [])]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "CI": "true"})
        stop.set()
        for hog in hogs:
            hog.join(5)
        load = os.getloadavg()[0]
        if done.returncode != 0:  # the whole output of a failed round, to read the race from
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"stress_served_round{number}.log"
            log.write_text(done.stdout + done.stderr)
            print(f"round {number}'s output: {log}", flush=True)
        summary = (done.stdout.strip().splitlines() or [""])[-1]
        rounds.append({"round": number, "passed": done.returncode == 0, "seconds": time.time() - started,
                       "load_1min": load, "summary": summary,
                       "failures": [line for line in done.stdout.splitlines() if line.startswith("FAILED")]})
        print(f"round {number}: {'passed' if done.returncode == 0 else 'FAILED'} in {rounds[-1]['seconds']:.0f} s "
              f"(load {load:.1f}): {summary}", flush=True)
        save("stress_served", {"args": vars(args), "tests": TESTS, "rounds": rounds,  # after every round: a stopped
              "passed": sum(r["passed"] for r in rounds)}, backend="tensorflow")  # run keeps the rounds it finished
    passed = sum(r["passed"] for r in rounds)
    print(f"{passed} of {len(rounds)} rounds passed with {args.hogs} busy processes beside the tests")
    save("stress_served", {"args": vars(args), "tests": TESTS, "rounds": rounds, "passed": passed}, backend="tensorflow")


if __name__ == "__main__":
    main()
