"""The report's plots as Chromium draws them: category order, tick labels and the direction of the means.

The page is made from hand-built runs with known gaps (tests/handmade_runs.py): L2 lowers the gap, larger
batches raise it, and L2 = 0 is logged as "0" by some runs and "0.0" by others. The browser is asked what
plotly actually laid out (its categories and the tick labels on screen), not what the JSON asked for.
"""

from __future__ import annotations

import re

import pytest

from ..handmade_runs import log_runs, report_page

pytestmark = pytest.mark.slow  # a browser

LAYOUT = """(title) => {
  const plot = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find((gd) => (gd.layout.title.text || '').startsWith(title));
  const xaxis = plot._fullLayout.xaxis;
  const mean = plot.data.find((t) => (t.name || '').startsWith('mean'));
  const ticks = Array.from(plot.querySelectorAll('.xtick text')).map((t) => t.textContent);
  return {categories: xaxis._categories, type: xaxis.type, meanX: mean.x, meanY: mean.y, ticks: ticks};
}"""


def test_categories_ticks_and_means_as_drawn_in_chromium(tmp_path, page):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_runs(uri)
    result, _ = report_page(tmp_path, uri)
    page.page.goto(result.path.resolve().as_uri())
    page.page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 6", timeout=30000)
    page.page.wait_for_timeout(500)
    assert page.errors == []

    l2 = page.page.evaluate(LAYOUT, "L2 narrows the gap")
    assert l2["type"] == "category" and l2["categories"] == ["0", "0.001"]
    assert l2["ticks"] == ["0", "0.001"]  # one level for 0 and 0.0, on screen
    assert l2["meanX"] == ["0", "0.001"] and l2["meanY"][0] > l2["meanY"][1]  # the line falls, as the gap does

    batch = page.page.evaluate(LAYOUT, "Large batches overfit more")
    assert batch["categories"] == ["16", "64", "256"] and batch["ticks"] == ["16", "64", "256"]
    assert batch["meanY"] == sorted(batch["meanY"])  # the line rises, as the gap does

    ticks = page.page.evaluate("""() => {
      const plot = Array.from(document.querySelectorAll('.js-plotly-plot'))
        .find((gd) => (gd.layout.title.text || '').startsWith('Generalization gap'));
      return Array.from(plot.querySelectorAll('.xtick text')).map((t) => t.textContent);
    }""")
    numbers = [t for t in ticks if re.fullmatch(r"[0-9.e+-]+", t)]
    assert numbers and all(len(re.sub(r"[^0-9]", "", t.split("e")[0]).strip("0")) <= 3 for t in numbers), ticks
    heat = page.page.evaluate("""() => {
      const plot = Array.from(document.querySelectorAll('.js-plotly-plot'))
        .find((gd) => (gd.layout.title.text || '').startsWith('Learning rate x batch size'));
      return {x: plot._fullLayout.xaxis._categories, y: plot._fullLayout.yaxis._categories};
    }""")
    assert heat["y"] == ["16", "64", "256"] and 1 < len(heat["x"]) <= 6 and all("–" in c for c in heat["x"])
