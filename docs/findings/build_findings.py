"""Rebuild the numbers and pictures of docs/findings.md from the findings sweeps.

Run from the repository root after the sweeps (see docs/findings.md for the commands)::

    .venv/bin/python docs/findings/build_findings.py [--only digits|mnist]

For each experiment of :data:`EXPERIMENTS` whose study exists, it writes the report
(reports/findings-<name>.html), a PNG of each claim's card (docs/findings/<name>-<n>.png,
taken in headless Chromium), docs/findings/results.json, and the results table of
docs/findings.md (between its results markers): one row per claim with its verdict, numbers
and the budget the runs were compared at. The rest of docs/findings.md is the narrative
around those results. ``docs/findings/results-running-gap.json`` keeps the results made
before issue 23, with the gap measured from Keras' running training-mode accuracy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "findings"
EXPERIMENTS = ["learning-rate-digits", "batch-size-digits", "regularization-digits", "learning-rate-mnist",
               "batch-size-mnist", "regularization-mnist", "label-noise-mnist", "large-batch-mnist",
               "lr-batch-scaling-mnist", "lr-batch-scaling-small-mnist"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only the experiments whose name contains this (digits, mnist, label-noise)")
    args = parser.parse_args()
    import cnnkeras
    from cnnkeras.errors import CnnkerasError

    rows, shots = [], []
    (ROOT / "reports").mkdir(exist_ok=True)  # cnnkeras never makes the folders of a path it is given
    for name in [e for e in EXPERIMENTS if not args.only or args.only in e]:
        path = ROOT / "experiments" / "findings" / f"{name}.yaml"
        try:
            result = cnnkeras.report(str(path), out=ROOT / "reports" / f"findings-{name}.html")
        except CnnkerasError as exc:
            print(f"skip {path.name}: {exc}", file=sys.stderr)
            continue
        shots.append((result.path, name, len(result.claims)))
        for i, claim in enumerate(result.claims, start=1):
            rows.append({"experiment": name, "n": i, **claim.to_dict()})
    _screenshots(shots)
    (OUT / "results.json").write_text(json.dumps(rows, indent=1, default=str))
    lines = ["| experiment | claim (measure) | verdict | effect (95% CI) | runs | compared at | figure |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['experiment']} | {r['claim']} (`{r['measure']}`) | **{r['verdict']}** | {_effect(r)} | "
                     f"{r['n_runs']} | {r.get('budget') or 'final'} | [png](findings/{r['experiment']}-{r['n']}.png) |")
    table = "\n".join(lines)
    doc = ROOT / "docs" / "findings.md"
    text = doc.read_text()
    start, end = text.index(MARK_START) + len(MARK_START), text.index(MARK_END)
    doc.write_text(text[:start] + "\n" + table + "\n" + text[end:])
    print(table)
    return 0


MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


def _effect(r: dict) -> str:
    """The slope per step, or for two values the difference between them, with its interval; for a level
    claim the mean there; for an optimum claim the slope of the optimum."""
    if r.get("kind") == "level":
        if r["mean"] != r["mean"]:
            return ""
        target = f"within {r['tolerance']:g} of {r['value']:g}" if r["expect"] == "near" else \
            f"{r['expect']} {r['value']:g}"
        return (f"mean {r['mean']:.4f} ({r['low']:.4f} to {r['high']:.4f}) at {r['parameter'].split('.')[-1]}="
                f"{r['at']}; claim: {target}")
    if r["slope"] != r["slope"]:  # NaN: no fit
        return ""
    if r.get("kind") == "optimum":
        return f"{r['slope']:+.3f} ({r['low']:+.3f} to {r['high']:+.3f}) {r['unit']}"
    if r.get("levels"):
        scale = r["change"] / r["slope"] if r["slope"] else 1.0
        low, high = sorted((r["low"] * scale, r["high"] * scale))
        return f"{r['change']:+.4f} ({low:+.4f} to {high:+.4f}) from {r['levels'][0]} to {r['levels'][1]}"
    within = f", in [{r['within'][0]:g}, {r['within'][1]:g}]" if r.get("within") else ""
    return f"{r['slope']:+.4f} ({r['low']:+.4f} to {r['high']:+.4f}) {r['unit']}{within}"


def _screenshots(shots: list[tuple[Path, str, int]]) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium: skipping the PNGs", file=sys.stderr)
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu",
                                                                    "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        for html, stem, n in shots:
            page.goto(html.resolve().as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0", timeout=30000)
            page.wait_for_timeout(500)
            for i in range(n):
                page.locator(".claim").nth(i).screenshot(path=str(OUT / f"{stem}-{i + 1}.png"))
        browser.close()


if __name__ == "__main__":
    raise SystemExit(main())
