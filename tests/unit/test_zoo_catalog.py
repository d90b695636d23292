"""The zoo's catalogue (cnnkeras.zoo.catalog): listed from stored figures, each equal to a real build."""

from __future__ import annotations

import subprocess
import sys

import keras
import pytest

import cnnkeras
from cnnkeras.zoo.catalog import UNMEASURED, short_citation, smallest_input, stored, zoo_catalog
from cnnkeras.zoo.inspect import inspect, model_for
from cnnkeras.zoo.registry import get_model_info, list_models

MEASURED = [name for name in list_models() if name not in UNMEASURED]


def test_every_model_has_stored_figures_and_the_catalogue_builds_none():
    assert sorted(stored()) == MEASURED
    probe = ("import sys, time; t = time.perf_counter(); import cnnkeras; frame = cnnkeras.zoo_catalog(); "
             "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'a model was built'; "
             "print(len(frame), time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[0]) == len(list_models())


@pytest.mark.parametrize("paper,cited", [
    ("Lin et al., Feature pyramid networks, CVPR 2017 (arXiv:1612.03144); semantic head: Kirillov et al., "
     "Panoptic feature pyramid networks, CVPR 2019 (arXiv:1901.02446)", "Lin et al. 2017"),
    ("Tan and Le, EfficientNet, ICML 2019 (arXiv:1905.11946)", "Tan and Le 2019"),
    ("Lin, Chen and Yan, Network in network, ICLR 2014", "Lin et al. 2014"),
    ("Chollet, Xception, CVPR 2017 (arXiv:1610.02357)", "Chollet 2017"),
    ("Howard et al., MobileNets, arXiv:1704.04861, 2017", "Howard et al. 2017"),
    ("LeCun et al., Gradient-based learning applied to document recognition, Proc. IEEE 1998", "LeCun et al. 1998"),
    ("(declarative: the layers listed in the config)", "-"),
])
def test_papers_are_cited_by_first_author_and_year(paper, cited):
    assert short_citation(paper) == cited


def test_every_registered_paper_cites_as_author_and_a_year_of_its_venue():
    frame = zoo_catalog()
    for row in frame.itertuples():
        if row.arch in UNMEASURED:
            continue
        year = row.citation.split()[-1]
        assert year in row.paper and f"arXiv:{year}" not in row.paper  # a venue's year, not an arXiv number
        assert row.citation.split()[0] == row.paper.split(",")[0].split()[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", MEASURED)
def test_the_stored_figures_equal_a_real_build(name):
    """Regenerate with ``python -m cnnkeras.zoo.catalog NAME`` when a model changes."""
    figures = stored()[name]
    keras.backend.clear_session()
    frame = inspect(model_for(name))
    assert (frame.attrs["params"], frame.attrs["macs"]) == (figures["params"], figures["macs"])
    info = get_model_info(name)
    assert figures["input"] == list(info.input_shape) and figures["classes"] == info.num_classes
    side, channels = figures["smallest_input"], info.input_shape[2]
    keras.backend.clear_session()
    model_for(name, input_shape=(side, side, channels))  # builds at its smallest input
    if side > 1:
        with pytest.raises(Exception):  # and not one pixel below
            keras.backend.clear_session()
            model_for(name, input_shape=(side - 1, side - 1, channels))


def test_smallest_input_bisection_finds_the_edge(monkeypatch):
    import cnnkeras.zoo.catalog as catalog

    monkeypatch.setattr(catalog, "_builds", lambda name, side, channels: (side >= 29, "" if side >= 29 else "small"))
    assert smallest_input("resnet18") == (29, "small")
    monkeypatch.setattr(catalog, "_builds", lambda name, side, channels: (True, ""))
    assert smallest_input("resnet18") == (1, "")


def test_the_zoo_command_lists_from_the_catalogue():
    frame = cnnkeras.zoo_catalog()
    row = frame.set_index("arch").loc["xception"]
    assert row["smallest_input"] == 71 and "at least 71x71" in row["why_smallest"]
    assert row["citation"] == "Chollet 2017" and row["params"] == 22_910_480
