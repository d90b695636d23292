"""The README is a short guide: its set-up commands, its length, its pictures and links."""

from __future__ import annotations

import re

from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_readme_is_a_guide_of_at_most_200_lines():
    assert len(README.splitlines()) <= 200


def test_its_first_two_commands_are_the_two_command_set_up():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line.strip() and not line.startswith("#")]
    assert commands == [
        "python3.11 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/cnnkeras run "
        "experiments/quickstart.yaml && .venv/bin/cnnkeras sweep experiments/digits-sweep.yaml && "
        ".venv/bin/cnnkeras report experiments/digits-sweep.yaml",
        "python3.11 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/python -m pytest",
    ]
    assert (REPO / ".ci" / "run").read_text().count(".venv/bin/python -m pytest") >= 1


def test_its_pictures_and_links_exist():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert {"docs/images/mlflow-sweep.png", "docs/images/report.png"} <= set(images)
    for target in images + re.findall(r"\]\((docs/[^)#]+)", README):
        assert (REPO / target).is_file(), target
