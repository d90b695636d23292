"""The cohort size is chosen from whole trials as timed, and never a size slower than one at a time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkeras.studies.scheduler import SizeChooser


def _chooser(largest: int) -> tuple[SizeChooser, list[str]]:
    said: list[str] = []
    return SizeChooser(largest, True, "jax", said.append), said


def test_sizes_double_up_to_the_largest_asked_for():
    assert _chooser(1)[0].sizes() == [1]
    assert _chooser(6)[0].sizes() == [1, 2, 4, 6]
    assert _chooser(8)[0].sizes() == [1, 2, 4, 8]


def test_one_at_a_time_when_a_cohort_measured_slower_and_the_line_says_how_much():
    chooser, said = _chooser(4)
    assert chooser.next_size() == 1
    chooser.record(1, 10.0)
    assert chooser.next_size() == 2
    chooser.record(2, 22.0)  # 11 s per trial: no gain, stop trying
    assert chooser.next_size() == 1 and chooser.chosen == 1
    assert said == ["cohorts: one trial at a time on jax; a cohort of 2 took 1.10x as long per trial "
                    "(measured per trial: 1: 10.0 s, 2: 11.0 s)"]


def test_the_fastest_measured_size_is_kept():
    chooser, said = _chooser(8)
    for size, seconds in ((1, 10.0), (2, 16.0), (4, 24.0), (8, 52.0)):
        assert chooser.next_size() == size
        chooser.record(size, seconds)
    assert chooser.chosen == 4 and said == ["cohorts of 4 on jax (measured per trial: 1: 10.0 s, 2: 8.0 s, "
                                            "4: 6.0 s, 8: 6.5 s)"]


def test_a_fixed_size_is_used_as_given_without_measuring():
    chooser = SizeChooser(4, False, "tensorflow", print)
    assert chooser.next_size() == 4 and chooser.chosen == 4


@settings(max_examples=200, deadline=None)
@given(largest=st.integers(1, 64), times=st.lists(st.floats(0.1, 1000.0), min_size=8, max_size=8))
def test_the_choice_is_never_slower_than_one_at_a_time(largest, times):
    chooser, _ = _chooser(largest)
    for seconds in times:
        size = chooser.next_size()
        chooser.record(size, seconds * size)
        if chooser.chosen is not None:
            break
    if chooser.chosen is not None and 1 in chooser.per_trial:
        per_trial = {k: sorted(v)[len(v) // 2] for k, v in chooser.per_trial.items()}
        assert per_trial[chooser.chosen] <= per_trial[1]


def test_each_job_trains_on_its_own_gpu(monkeypatch):
    from cnnkeras.studies.executor import gpu_for

    monkeypatch.setenv("CNNKERAS_GPUS", "0, 1,3")
    assert [gpu_for(job) for job in range(3)] == ["0", "1", "3"]  # --jobs 3 on three GPUs: one each
    monkeypatch.delenv("CNNKERAS_GPUS")
    assert gpu_for(0) is None
