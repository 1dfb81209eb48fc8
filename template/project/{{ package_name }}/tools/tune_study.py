"""Where a `tune` study lives and how workers share it: exactly tune.n_trials trials queued when the study is
created, popped by whichever worker is free, a killed worker's trial failed by its stale heartbeat and queued again
once, and the worker that finishes the last trial named as the one that writes tuned.yaml."""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from ..config import Config

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ACTIVE = (TrialState.RUNNING, TrialState.WAITING)
STUDY_ATTEMPTS = 5
BUDGET_ATTR = "n_trials"  # study user attribute: the trials queued for it (set once they are)
WORKER_ATTR = "worker"  # trial user attribute: host:pid of the process that ran it


class TrialBudgetReached(Exception):
    """No queued trial is left for this worker: every trial of the study is finished, running or taken."""


class BudgetedRDBStorage(optuna.storages.RDBStorage):
    """An RDB storage that adds trials only from a template: the queued trials (`enqueue_trial`) and the heartbeat's
    retries. Optuna's `ask()` creates a fresh trial when the queue is empty, so workers that finish together would
    run more than tune.n_trials; here they stop instead (the queue is taken atomically, WAITING to RUNNING)."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock
        self.seen_without_heartbeat: dict[int, float] = {}  # trial id -> when this worker first saw it so

    # Optuna's _CachedStorage (which wraps every RDBStorage) calls this private method, not create_new_trial.
    def _create_new_trial(
        self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None
    ) -> optuna.trial.FrozenTrial:
        if template_trial is None:
            raise TrialBudgetReached
        return super()._create_new_trial(study_id, template_trial)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's stale trials, and the running trials that never had a heartbeat: a worker killed between taking
        a trial and its first beat leaves it running forever otherwise. Those are stale once this worker has seen
        them without a beat for the grace period (its own clock: the trial's start time is another host's)."""
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        stale = super()._get_stale_trial_ids(study_id)
        with _create_scoped_session(self.scoped_session) as session:
            silent = session.query(models.TrialModel.trial_id).filter(
                models.TrialModel.study_id == study_id,
                models.TrialModel.state == TrialState.RUNNING,
                ~models.TrialModel.heartbeats.any(),
            )
            silent_ids = {trial_id for (trial_id,) in silent.all()}
        now = self.clock()
        for trial_id in silent_ids:
            self.seen_without_heartbeat.setdefault(trial_id, now)
        grace = self.grace_period or 2 * (self.heartbeat_interval or 1)
        return stale + [
            trial_id for trial_id in sorted(silent_ids) if now - self.seen_without_heartbeat[trial_id] > grace
        ]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def create_storage(url: str, heartbeat_seconds: float) -> BudgetedRDBStorage:
    """The study's storage with a heartbeat: a trial whose worker stopped beating for 4 heartbeats is failed by
    another worker and queued once more (RetryHeartbeatStaleTrialCallback)."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in practice
        return BudgetedRDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=max(1, round(heartbeat_seconds)),
            grace_period=max(4, round(4 * heartbeat_seconds)),
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def _queue_budget(study: optuna.Study, n_trials: int) -> None:
    """Record the budget, then queue trials up to it (a raised budget adds the difference; a study made before
    trials were queued counts the trials it holds). The budget is recorded first: a worker joining while the
    queue fills must not fill it too."""
    queued = int(study.user_attrs.get(BUDGET_ATTR, count(study, FINISHED + ACTIVE)))
    study.set_user_attr(BUDGET_ATTR, max(n_trials, queued))
    for _ in range(max(n_trials - queued, 0)):
        study.enqueue_trial({})  # parameters are sampled when a worker pops it


def open_study(
    name: str, url: str, config: Config, maximize: bool, sampler: optuna.samplers.BaseSampler, pruner: Any
) -> optuna.Study:
    """Create the study and queue its trials, or join it. The database's unique study name decides which worker
    creates it; the others wait for its queue. Processes starting together also race to create the tables: the
    losers retry."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    direction = "maximize" if maximize else "minimize"
    for attempt in range(STUDY_ATTEMPTS):
        try:
            storage = create_storage(url, config.tune.heartbeat_seconds)  # creates the tables on first use
            try:
                study = optuna.create_study(
                    study_name=name, storage=storage, direction=direction, sampler=sampler, pruner=pruner
                )
                _queue_budget(study, config.tune.n_trials)
                return study
            except optuna.exceptions.DuplicatedStudyError:
                study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
                return _joined(study, config.tune.n_trials)
        except (IntegrityError, OperationalError):
            if attempt + 1 == STUDY_ATTEMPTS:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _joined(study: optuna.Study, n_trials: int, wait_seconds: float = 60) -> optuna.Study:
    """A study another worker created: wait until it has recorded its budget (a study with trials but no budget
    is from before trials were queued); a raised budget is queued here (start that worker alone first)."""
    deadline = time.monotonic() + wait_seconds
    while BUDGET_ATTR not in study.user_attrs and not study.trials and time.monotonic() < deadline:
        time.sleep(0.5)
    if int(study.user_attrs.get(BUDGET_ATTR, 0)) < n_trials:
        _queue_budget(study, n_trials)  # a study from before the queue, or a larger tune.n_trials
    return study


def count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def run_worker(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    timeout: float | None,
    heartbeat_seconds: float,
) -> list[int]:
    """Pop and run queued trials until none is left; then wait while other workers' trials run, since a stale one
    comes back as a retry. Returns the numbers of the trials this process ran."""
    ran: list[int] = []
    started = time.monotonic()

    def tracked(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, worker_name())
        ran.append(trial.number)
        return objective(trial)

    idle = 0  # checks in a row that found nothing running or queued
    while True:
        left = None if timeout is None else timeout - (time.monotonic() - started)
        if left is not None and left <= 0:
            break
        stop = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)  # a storage without a queue stops too
        try:
            study.optimize(tracked, timeout=left, catch=(), callbacks=[stop])
        except TrialBudgetReached:
            pass  # the queue is empty: see what the other workers do
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as error:
            if not _failed_by_another_worker(error):
                raise
            print(f"tune: trial {ran[-1]} was failed by another worker (its heartbeat came late); it runs again")
        idle = idle + 1 if count(study, ACTIVE) == 0 else 0
        # Twice idle, a heartbeat apart: a worker failing a stale trial queues its retry a moment after.
        if count(study, FINISHED) >= n_trials or idle >= 2:
            break
        time.sleep(heartbeat_seconds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial comes back queued
    return ran


def _failed_by_another_worker(error: Exception) -> bool:
    """Optuna's errors for a trial this worker runs that another worker failed as stale (a heartbeat came late)."""
    return isinstance(error, optuna.exceptions.UpdateFinishedTrialError) or "Cannot tell a FAIL trial" in str(error)


def finisher(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The finished trial that completed last: its worker writes tuned.yaml."""
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    return max(finished, key=lambda t: (t.datetime_complete or datetime.min, t.number), default=None)
