"""tune: an Optuna study over config keys, pruned, resumable, shared by processes; the best trial as an overlay."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from ..config import Config, SearchDimension, load_config
from ..core.errors import ConfigError
from ..core.runs import RunResult
from ..tools import tune as tune_stage
from .conftest import PACKAGE, PROJECT_ROOT, TASK, WRITERS, task_overrides

# A space every task's fast-dev run takes: two learning rates and two epoch counts.
SPACE = {
    "train.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
    "train.epochs": {"type": "int", "low": 1, "high": 2},
}


def tune_config(root: Path, *extra: str, space: dict | None = None) -> Config:
    overrides = [
        *task_overrides(root / "data", root / "outputs"),
        "tune.startup_trials=1",
        f"tune.overlay={root}/tuned.yaml",
    ]
    config = load_config([*overrides, *extra])
    settings = config.model_dump(mode="json")
    settings["tune"]["space"] = space or SPACE  # replace, not merge, the project's default space
    return Config.model_validate(settings)


@pytest.fixture
def competition_root(tmp_path: Path) -> Path:
    WRITERS[TASK](tmp_path / "data")
    return tmp_path


def test_a_three_trial_study_writes_an_overlay_that_loads(competition_root: Path) -> None:
    result = tune_stage.tune(tune_config(competition_root, "tune.n_trials=3"))
    assert result["trials"] == 3 and result["complete"] + result["pruned"] == 3
    overlay_path = Path(result["overlay"])
    overlay = yaml.safe_load(overlay_path.read_text())
    assert overlay["train"]["lr"] == pytest.approx(result["best_params"]["train.lr"])
    assert overlay["train"]["epochs"] == result["best_params"]["train.epochs"]
    tuned = load_config(config_files=[overlay_path])
    assert tuned.train.lr == pytest.approx(result["best_params"]["train.lr"])
    assert tuned.data.root == competition_root / "data"  # what this tune changed from the defaults comes along
    assert "tune" not in overlay and "output_dir" not in overlay
    assert all(value != {} for value in overlay.values())  # sections with nothing changed are left out
    report = Path(result["report"]).read_text()
    assert "optimisation history" in report and report.count("data:image/png;base64") >= 2
    trial_runs = sorted((competition_root / "outputs" / "baseline" / "tune").glob("trial_*/metrics.json"))
    assert len(trial_runs) == result["complete"]


def test_a_trial_that_lags_is_pruned(competition_root: Path, monkeypatch) -> None:
    """Scores made certain: trial 0 validates at 1.0 each epoch, later trials at 0.0, so the median pruner stops
    them at their second report (tune.prune_after=2)."""

    def fake_train(config: Config, *, on_evaluation) -> RunResult:
        score = 1.0 if config.experiment == "trial_000" else 0.0
        for epoch in (1, 2, 3):
            on_evaluation(0, epoch, score)
        return RunResult(config, {"cv_mean": score})

    monkeypatch.setattr(tune_stage, "train", fake_train)
    result = tune_stage.tune(tune_config(competition_root, "tune.n_trials=3", "tune.sampler=random"))
    trials = optuna.load_study(study_name="baseline", storage=result["storage"]).trials
    states = [trial.state for trial in trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.PRUNED]
    assert [len(trial.intermediate_values) for trial in trials] == [3, 2, 2]
    assert result["best_trial"] == 0 and result["pruned"] == 2


def test_a_smoke_tune_gives_an_overlay_that_trains_in_full(competition_root: Path, monkeypatch, capfd) -> None:
    """`tune -e smoke`: the trials run capped, but tuned.yaml carries none of the caps (only the tuned keys and what
    the trials ran with besides), names the real command, and each trial says itself in one line, not Optuna's."""
    ran = []

    def fake_train(config: Config, *, on_evaluation) -> RunResult:
        ran.append((config.train.max_steps_per_epoch, config.train.max_eval_batches, config.train.epochs))
        on_evaluation(0, 1, config.train.lr)
        return RunResult(config, {"cv_mean": config.train.lr})  # the largest learning rate wins

    monkeypatch.setattr(tune_stage, "train", fake_train)
    overrides = [*task_overrides(competition_root / "data", competition_root / "outputs"), "model.drop_rate=0.1"]
    overrides += ["tune.n_trials=2", "tune.pruner=none", f"tune.overlay={competition_root}/tuned.yaml"]
    settings = load_config(overrides, experiment="smoke").model_dump(mode="json")
    settings["tune"]["space"] = {"train.lr": SPACE["train.lr"]}
    result = tune_stage.tune(Config.model_validate(settings))
    assert ran == [(2, 2, 1), (2, 2, 1)]  # the trials themselves ran as short as smoke asked
    path = Path(result["overlay"])
    text, overlay = path.read_text(), yaml.safe_load(path.read_text())
    assert overlay["train"]["lr"] == pytest.approx(result["best_params"]["train.lr"])
    assert not {"epochs", "max_steps_per_epoch", "max_eval_batches"} & set(overlay["train"])  # no caps
    assert overlay["model"]["drop_rate"] == 0.1  # what the trials ran with besides comes along
    tuned, project = load_config(experiment=str(path)), load_config()
    assert tuned.train.max_steps_per_epoch is None and tuned.train.max_eval_batches is None
    assert tuned.train.epochs == project.train.epochs
    assert f"# Train every fold with it: python -m {PACKAGE} run -e {path}\n" in text and "<package>" not in text
    assert (
        "only shortened the trials (the project's values apply): train.epochs=1 train.max_steps_per_epoch=2 "
        "train.max_eval_batches=2" in text
    )
    out, err = capfd.readouterr()
    trials = [line for line in out.splitlines() if line.startswith("tune: trial ")]
    lr = [trial.params["train.lr"] for trial in optuna.load_study(study_name="smoke", storage=result["storage"]).trials]
    metric = load_config(overrides).metric
    assert trials[:2] == [f"tune: trial 0: train.lr={lr[0]:.3g}", f"tune: trial 0 done: {metric} {lr[0]:.4f}"]
    assert len(trials) == 4 and "Trial 0 finished" not in out + err and "A new study created" not in out + err


def test_the_overlay_in_configs_experiment_is_run_by_its_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tune_stage, "EXPERIMENT_DIR", tmp_path)
    study = optuna.create_study(study_name="s", direction="maximize")
    distribution = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    study.add_trial(
        optuna.trial.create_trial(params={"train.lr": 3.1e-4}, distributions={"train.lr": distribution}, value=0.9)
    )
    config = load_config(["train.max_steps_per_epoch=5", "train.epochs=2"])
    text = tune_stage.write_tuned_overlay(config, study, tmp_path / "tuned.yaml").read_text()
    assert f"python -m {PACKAGE} run -e tuned\n" in text
    assert yaml.safe_load(text) == {"train": {"lr": 3.1e-4}}
    assert "train.epochs=2 train.max_steps_per_epoch=5" in text


def test_workers_sharing_a_study_draw_different_trials_and_one_worker_repeats_itself() -> None:
    """Two processes on one study with one tune.seed ran the same first trials: each trial is seeded by its number."""
    config = load_config(["tune.sampler=tpe"])
    dimension = SearchDimension(type="float", low=1e-4, high=1e-2, log=True)

    def first_draws(workers: int) -> list[float]:
        storage = optuna.storages.InMemoryStorage()
        studies = [
            optuna.create_study(
                study_name="shared", storage=storage, sampler=tune_stage.create_sampler(config), load_if_exists=True
            )
            for _ in range(workers)
        ]
        return [
            tune_stage.suggest(study.ask(), "train.lr", dimension) for study in studies for _ in range(2 // workers)
        ]

    together = first_draws(2)
    assert together[0] != together[1]
    assert first_draws(1) == together  # trial k draws the same value whichever process runs it


def test_the_projects_default_space_is_valid() -> None:
    space = tune_stage.check_space(load_config())
    assert {"train.lr", "train.weight_decay", "train.batch_size", "train.epochs", "model.image_size"} <= set(space)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"train.lrr": {"type": "float", "low": 0.1, "high": 1}}, "tune.space: config key 'train.lrr' is not known"),
        ({"train.epochs": {"type": "float", "low": 1.5, "high": 3}}, "tune.space.train.epochs: 1.5 is not a value"),
        ({"output_dir": {"type": "categorical", "choices": ["a"]}}, "tune.space: 'output_dir' cannot be tuned"),
        (
            {"model.backbone": {"type": "categorical", "choices": ["test_resnet", "resnet5O"]}},
            "tune.space.model.backbone: 'resnet5O' is not a value it takes (model.backbone 'resnet5O' is not a timm",
        ),
    ],
)
def test_invalid_spaces_fail_before_any_training(competition_root: Path, space: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        tune_stage.tune(tune_config(competition_root, space=space))
    assert not (competition_root / "outputs").exists()


def _tune_process(root: Path, *extra: str) -> subprocess.Popen:
    """`python -m <package> tune` in its own process, on the fast-dev competition with the small space."""
    overlay = root / "space.yaml"
    overlay.write_text(yaml.safe_dump({"tune": {"space": {key: None for key in load_config().tune.space} | SPACE}}))
    command = [sys.executable, "-m", PACKAGE, "tune", "--config", str(overlay), "tune.startup_trials=1"]
    command += ["tune.heartbeat_seconds=2", *extra]  # a killed worker's trial is stale after 8 s
    command += [f"tune.overlay={root}/tuned.yaml"]
    command += task_overrides(root / "data", root / "outputs")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finished(root: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{root / 'outputs' / 'baseline' / 'tune' / 'study.db'}"
    from sqlalchemy.exc import IntegrityError, OperationalError

    try:
        study = optuna.load_study(study_name="baseline", storage=storage)
    except (KeyError, IntegrityError, OperationalError):  # the tune process is still creating the tables or study
        return []
    return [trial for trial in study.trials if trial.state in tune_stage.FINISHED]


# Study sharing and resuming are the storage's, whatever the task: run once, in classification projects.
ONCE = pytest.mark.skipif(TASK != "classification", reason="task-independent; runs in classification projects")


@pytest.mark.slow
@ONCE
def test_a_killed_tune_continues_the_same_study(competition_root: Path) -> None:
    process = _tune_process(competition_root, "tune.n_trials=3")
    deadline = time.monotonic() + 120
    database = competition_root / "outputs" / "baseline" / "tune" / "study.db"
    while time.monotonic() < deadline and not (database.is_file() and _finished(competition_root)):
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = [trial.number for trial in _finished(competition_root)]
    assert first, "no trial finished before the kill"
    restarted = _tune_process(competition_root, "tune.n_trials=3")
    output, _ = restarted.communicate(timeout=300)
    assert restarted.returncode == 0, output
    finished = _finished(competition_root)
    assert len(finished) >= 3
    assert set(first) <= {trial.number for trial in finished}  # the same study, continued
    assert (competition_root / "tuned.yaml").is_file()


@pytest.mark.slow
@ONCE
def test_two_processes_share_one_study_without_losing_trials(competition_root: Path) -> None:
    processes = [_tune_process(competition_root, "tune.n_trials=4") for _ in range(2)]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    storage = f"sqlite:///{competition_root / 'outputs' / 'baseline' / 'tune' / 'study.db'}"
    trials = optuna.load_study(study_name="baseline", storage=storage).trials
    assert len([t for t in trials if t.state in tune_stage.FINISHED]) == 4  # exactly the budget, none more
    assert all(trial.state in tune_stage.FINISHED for trial in trials)  # none failed, none left running
    assert len({trial.number for trial in trials}) == len(trials)


def _postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl): on PATH, or where Debian puts them."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    folders = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    return folders[-1] if folders else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server in a temp folder on a free localhost port (initdb, pg_ctl), stopped after."""
    programs = _postgres_bin()
    if programs is None:
        pytest.skip("PostgreSQL's server programs are missing: apt-get install postgresql (.ci/run installs them)")
    pytest.importorskip("psycopg2", reason="the tune extra's client is missing: pip install -e '.[tune]'")
    folder = Path(tempfile.mkdtemp(prefix="podium-pg-"))  # under /tmp: the postgres user must reach it
    as_server = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    if as_server:
        shutil.chown(folder, "postgres")
    port = _free_port()
    data = folder / "data"
    run = [*as_server, str(programs / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*as_server, str(programs / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    subprocess.run([*run, "-o", options, "-l", str(folder / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@ONCE
def test_three_workers_share_a_postgres_study_and_retry_a_killed_trial(
    competition_root: Path, postgres_url: str
) -> None:
    """Three `tune` workers on one PostgreSQL study (as the README's two commands start them), one killed mid-trial:
    exactly tune.n_trials finish, no number twice, the killed trial runs again once, and one worker writes
    tuned.yaml naming the best trial."""
    budget = 5
    workers = [
        _tune_process(competition_root, f"tune.storage={postgres_url}", f"tune.n_trials={budget}") for _ in range(3)
    ]
    victim, killed = workers[0], None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline:
        for trial in _trials(postgres_url, optuna.trial.TrialState.RUNNING):
            if trial.user_attrs.get("worker", "").endswith(f":{victim.pid}"):
                victim.send_signal(signal.SIGKILL)
                killed = trial.number
        time.sleep(0.2)
    victim.wait()
    assert killed is not None, "the first worker never ran a trial"
    outputs = [worker.communicate(timeout=240)[0] for worker in workers[1:]]
    for worker, output in zip(workers[1:], outputs, strict=True):
        assert worker.returncode == 0, output
    trials = _trials(postgres_url)
    finished = [trial for trial in trials if trial.state in tune_stage.FINISHED]
    assert len(finished) == budget
    assert len({trial.number for trial in trials}) == len(trials)
    assert next(t for t in trials if t.number == killed).state == optuna.trial.TrialState.FAIL
    retries = [trial for trial in trials if trial.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state in tune_stage.FINISHED
    study = optuna.load_study(study_name="baseline", storage=postgres_url)
    overlay = (competition_root / "tuned.yaml").read_text()
    assert f"trial {study.best_trial.number} of study 'baseline'" in overlay
    writers = [output for output in outputs if "tune: this worker finished the study and wrote" in output]
    assert len(writers) == 1, "\n\n".join(output[-2500:] for output in outputs)


def _trials(url: str, *states: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        study = optuna.load_study(study_name="baseline", storage=url)
    except (KeyError, SQLAlchemyError):  # the first worker is still creating the tables or the study
        return []
    return study.get_trials(deepcopy=False, states=states or None)


@ONCE
def test_only_the_worker_that_ran_the_last_trial_writes_the_overlay(competition_root: Path, monkeypatch) -> None:
    """A worker that ran no trial while another finished the study leaves tuned.yaml to it; a worker started once
    the study had ended writes it (on its own machine)."""
    from ..tools import tune_study

    config = tune_config(competition_root, "tune.n_trials=2")
    real_run_worker = tune_stage.run_worker

    def another_worker_runs_everything(study, objective, n_trials, timeout, heartbeat):
        storage = tune_study.create_storage(tune_stage.storage_url(config), heartbeat)
        other = optuna.load_study(study_name=study.study_name, storage=storage)
        real_run_worker(other, objective, n_trials, timeout, heartbeat)  # trials this process did not run
        return []

    monkeypatch.setattr(tune_stage, "run_worker", another_worker_runs_everything)
    first = tune_stage.tune(config)
    assert first["overlay"] is None and first["complete"] + first["pruned"] == 2
    assert not (competition_root / "tuned.yaml").exists()
    monkeypatch.setattr(tune_stage, "run_worker", real_run_worker)
    later = tune_stage.tune(config)  # the study is done: no trial runs, the overlay is written here
    assert later["trials"] == 2 and later["overlay"] == str(competition_root / "tuned.yaml")


@ONCE
def test_a_worker_joining_while_the_queue_fills_queues_nothing(competition_root: Path, monkeypatch) -> None:
    """The creator queues tune.n_trials trials; a worker that joins half-way must not queue them again."""
    from ..tools import tune_study

    config = tune_config(competition_root, "tune.n_trials=4")
    url = f"sqlite:///{competition_root / 'study.db'}"
    sampler, pruner = optuna.samplers.RandomSampler(0), optuna.pruners.NopPruner()
    real_enqueue, joined = optuna.Study.enqueue_trial, []

    def enqueue_while_another_worker_joins(self, *args, **kwargs):
        real_enqueue(self, *args, **kwargs)
        if not joined:
            joined.append(tune_study.open_study("s", url, config, True, sampler, pruner))

    monkeypatch.setattr(optuna.Study, "enqueue_trial", enqueue_while_another_worker_joins)
    study = tune_study.open_study("s", url, config, True, sampler, pruner)
    assert joined and len(study.trials) == 4 and study.user_attrs["n_trials"] == 4


@ONCE
def test_a_worker_whose_trial_another_failed_goes_on(competition_root: Path) -> None:
    """A live worker whose heartbeat came late finds its trial failed by another worker: it says so and takes the
    next trial instead of stopping with Optuna's traceback."""
    from ..tools import tune_study

    config = tune_config(competition_root, "tune.n_trials=2")
    url = f"sqlite:///{competition_root / 'study.db'}"
    study = tune_study.open_study("s", url, config, True, optuna.samplers.RandomSampler(0), optuna.pruners.NopPruner())
    storage = tune_study.create_storage(url, 30)

    def objective(trial: optuna.Trial) -> float:
        if trial.number == 0:  # what fail_stale_trials in another worker does to a late heartbeat
            trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("s"), 0)
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        return trial.suggest_float("x", 0, 1)

    ran = tune_study.run_worker(study, objective, 2, timeout=60, heartbeat_seconds=1)
    states = {trial.number: trial.state for trial in study.trials}
    assert ran == [0, 1] and states[0] == optuna.trial.TrialState.FAIL and states[1] in tune_stage.FINISHED


@ONCE
def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_queued_again(competition_root: Path) -> None:
    """A worker killed between taking a trial and its first heartbeat leaves it running with no beat at all; once
    another worker has seen it so for the grace period it is failed and queued again, not waited on forever."""
    from ..tools import tune_study

    config = tune_config(competition_root, "tune.n_trials=1")
    url = f"sqlite:///{competition_root / 'study.db'}"
    study = tune_study.open_study("s", url, config, True, optuna.samplers.RandomSampler(0), optuna.pruners.NopPruner())
    study.ask()  # taken, as by a worker killed before its heartbeat thread beat once
    now = [0.0]
    storage = tune_study.create_storage(url, 1)
    storage.clock = lambda: now[0]
    other = optuna.load_study(study_name="s", storage=storage)
    optuna.storages.fail_stale_trials(other)  # first seen without a beat: not stale yet
    assert other.trials[0].state == optuna.trial.TrialState.RUNNING
    now[0] = storage.grace_period + 1
    optuna.storages.fail_stale_trials(other)
    states = [trial.state for trial in other.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]


def test_a_trial_trains_the_batch_and_lr_it_sampled_not_a_budget_s_fit(tmp_path: Path) -> None:
    config = load_config(["train.time_budget_minutes=1"])
    sampled = tune_stage.trial_config(config, {"train.batch_size": 16}, 0, tmp_path / "folds.csv", "study")
    assert sampled.train.batch_size == 16 and sampled.train.fit_batch_to_budget is False
    other = tune_stage.trial_config(config, {"model.drop_rate": 0.1}, 1, tmp_path / "folds.csv", "study")
    assert other.train.fit_batch_to_budget is True
