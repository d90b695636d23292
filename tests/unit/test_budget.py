"""The total is kept over sweep processes that die at any moment: never exceeded, never left short,
and no dead trial's retry is left unrun.

Sweep processes are simulated on one real Optuna study (in-memory storage) with cnnkeras' own
:class:`Ledger`, :class:`DeadTrials` and :class:`Budget`, the three pieces a sweep process
asks, tells and takes over with. Hypothesis draws the interleaving: which process asks, which
trial ends and how, which process dies with its trials running, and when a survivor's
heartbeat watch notices (the CI failure this class comes from: a survivor asked fresh trials
while a dead process's trials were not yet noticed, then their retries had no place left).
"""

from __future__ import annotations

import optuna
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkeras.config.schema import FloatParam
from cnnkeras.studies.ledger import Ledger, TrialOutcome, TrialState
from cnnkeras.studies.recovery import DeadTrials
from cnnkeras.studies.scheduler import WAIT, Budget
from cnnkeras.studies.summary import count_done

SPACE = {"train.optimizer.learning_rate": FloatParam(type="float", low=1e-4, high=1e-2, log=True)}
State = optuna.trial.TrialState


class Process:
    """One sweep process: its study handle, ledger, budget and the trials it is training."""

    def __init__(self, storage, name: str, index: int, total: int, cohort: int):
        study = optuna.load_study(study_name=name, storage=storage)
        self.ledger = Ledger(study, storage, worker=index, seed=index, max_retries=2)
        self.dead = DeadTrials(self.ledger, None, SPACE)
        self.budget = Budget(study, total, None)
        self.cohort = cohort
        self.training: list = []
        self.alive = True

    def ask(self) -> int | None:
        """How many trials were asked for (WAIT: the remaining places are held elsewhere)."""
        asked = self.budget.ask(self.cohort, lambda n: self.ledger.ask(n, SPACE))
        if asked is WAIT:
            return WAIT
        self.training.extend(asked)
        return len(asked)

    def tell(self, index: int, state: TrialState) -> None:
        asked = self.training.pop(index % len(self.training))
        values = [0.5] if state is TrialState.COMPLETE else None
        self.ledger.tell(asked, TrialOutcome(state=state, values=values, summary={}, run_id=None))
        self.budget.settle(asked.number)

    def watch(self, dead: list[Process]) -> None:
        """What the heartbeat watch does once the dead processes' trials went stale."""
        for other in dead:
            for asked in other.training:
                self.dead(asked.number, "its sweep process stopped sending heartbeats")


events = st.lists(st.tuples(st.sampled_from(["ask", "tell", "die", "watch"]), st.integers(0, 7),
                            st.sampled_from([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])),
                  max_size=40)


@settings(max_examples=150, deadline=None)
@given(total=st.integers(1, 8), processes=st.integers(2, 3), cohort=st.integers(1, 3), events=events)
def test_the_total_holds_whoever_dies_and_no_retry_is_left_unrun(total, processes, cohort, events):
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="b", storage=storage, direction="maximize")
    group = [Process(storage, "b", i, total, cohort) for i in range(processes)]
    dead: list[Process] = []
    for action, pick, state in events:
        alive = [p for p in group if p.alive]
        process = alive[pick % len(alive)]
        if action == "ask":
            process.ask()
        elif action == "tell" and process.training:
            process.tell(pick, state)
        elif action == "die" and len(alive) > 1:  # the last process standing is never killed
            process.alive = False
            dead.append(process)
        elif action == "watch":
            process.watch(dead)
            for other in dead:
                other.training.clear()
        assert count_done(study.get_trials(deepcopy=False)) <= total
    # the survivors run to the end: each takes, trains and tells; the watch notices the dead
    survivors = [p for p in group if p.alive]
    survivors[0].watch(dead)
    for _ in range(10 * total + 10):
        answers = []
        for process in survivors:
            answer = process.ask()
            answers.append(answer)
            while process.training:
                process.tell(0, TrialState.COMPLETE)
        if all(a == 0 for a in answers):
            break
        assert not all(a is WAIT for a in answers), "every process waits for the others"
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert count_done(trials) == total, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert State.WAITING not in states and State.RUNNING not in states, \
        [(t.number, t.state.name, t.user_attrs) for t in trials]


def test_a_survivor_waits_while_a_dead_process_holds_the_last_places_then_runs_their_retries():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="w", storage=storage, direction="maximize")
    first, second = Process(storage, "w", 0, 4, 2), Process(storage, "w", 1, 4, 2)
    assert first.ask() == 2  # trials 0 and 1, then the first process dies
    assert second.ask() == 2  # trials 2 and 3: every place is taken
    second.tell(0, TrialState.COMPLETE)
    second.tell(0, TrialState.COMPLETE)
    assert second.ask() is WAIT and second.budget.held_elsewhere == 2  # not two fresh trials
    second.watch([first])  # the dead process's trials: FAIL, not counted, queued again
    assert second.ask() == 2
    assert sorted(a.trial.user_attrs.get("retry_of") for a in second.training) == [0, 1]
    second.tell(0, TrialState.COMPLETE)
    second.tell(0, TrialState.COMPLETE)
    assert second.ask() == 0 and count_done(study.get_trials(deepcopy=False)) == 4


def test_a_dead_trials_run_left_running_is_closed_at_the_next_sweeps_start(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("e")
    parent = client.create_run(experiment)
    run = client.create_run(experiment, tags={"mlflow.parentRunId": parent.info.run_id})
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="c", storage=storage)
    process = Process(storage, "c", 0, 2, 1)
    process.ask()
    process.ledger.record_run(process.training[0], run.info.run_id)
    # its process died and the store failed while the run was being closed: the trial is FAIL and queued
    # again, the run still RUNNING
    process.ledger.fail_dead(process.training[0].number, "its sweep process died")
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    survivor = DeadTrials(Ledger(study, storage, worker=1, seed=1, max_retries=2), uri, SPACE)
    assert survivor.close_left_running("e", parent.info.run_id) == 1 and not survivor.unclosed
    closed = client.get_run(run.info.run_id)
    assert closed.info.status == "FAILED" and closed.data.tags["cnnkeras.trial_state"] == "FAIL"
    assert survivor.close_left_running("e", parent.info.run_id) == 0
