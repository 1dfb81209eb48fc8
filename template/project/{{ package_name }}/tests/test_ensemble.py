"""Voting rules and weight fits on tiny arrays with known answers; the ensemble command on real runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ..cli import app
from ..ensemble import (
    correlation_matrix,
    fit_weights_scipy,
    geometric_vote,
    greedy_selection,
    majority_vote,
    mean_vote,
    rank_vote,
)
from ..errors import ConfigError
from ..metrics import create_metric
from .conftest import CSV_LAYOUT, fast_overrides

A = np.array([[0.8, 0.2], [0.4, 0.6]])
B = np.array([[0.2, 0.8], [0.2, 0.8]])
MEMBERS = np.stack([A, B])


def test_mean_vote_weighted() -> None:
    assert np.allclose(mean_vote(MEMBERS), [[0.5, 0.5], [0.3, 0.7]])
    assert np.allclose(mean_vote(MEMBERS, np.array([3.0, 1.0])), [[0.65, 0.35], [0.35, 0.65]])


def test_geometric_vote() -> None:
    # Row 0: sqrt(.8*.2)=0.4 both classes -> [0.5, 0.5]; row 1: sqrt(.4*.2), sqrt(.6*.8) normalised.
    row1 = np.array([np.sqrt(0.08), np.sqrt(0.48)])
    assert np.allclose(geometric_vote(MEMBERS), [[0.5, 0.5], row1 / row1.sum()])


def test_rank_vote() -> None:
    # Column ranks / 2: A col0 [2,1]/2, B col0 tie [1.5,1.5]/2 -> mean [0.875, 0.625].
    assert np.allclose(rank_vote(MEMBERS)[:, 0], [0.875, 0.625])


def test_majority_vote_and_tie_rule() -> None:
    three = np.stack([A, B, B])
    assert majority_vote(three).argmax(axis=1).tolist() == [1, 1]
    assert np.allclose(majority_vote(three), [[1 / 3, 2 / 3], [0, 1]], atol=1e-5)
    # One vote each: the tie goes to the class with the higher mean probability.
    tie = majority_vote(np.stack([np.array([[0.9, 0.1]]), np.array([[0.4, 0.6]])]))
    assert tie.argmax(axis=1).tolist() == [0]  # mean probability 0.65 vs 0.35


def test_identical_members_equal_the_member() -> None:
    same = np.stack([A, A, A])
    for vote in (mean_vote, geometric_vote):
        assert np.allclose(vote(same), A)
    assert (majority_vote(same).argmax(axis=1) == A.argmax(axis=1)).all()


def test_greedy_selection_picks_the_member_that_helps() -> None:
    targets = np.array([0, 1, 1, 0])
    good = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    bad = 1 - good
    accuracy = create_metric("accuracy")
    weights = greedy_selection(np.stack([bad, good]), lambda p: accuracy.score(targets, p, 0.5), True)
    assert weights.tolist() == [0.0, 1.0]


def test_scipy_weights_favour_the_better_member() -> None:
    targets = np.array([0, 1, 1, 0, 1])
    sharp = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.8, 0.2], [0.3, 0.7]])
    noisy = np.array([[0.4, 0.6], [0.6, 0.4], [0.5, 0.5], [0.5, 0.5], [0.6, 0.4]])
    log_loss = create_metric("log_loss")
    weights = fit_weights_scipy(np.stack([noisy, sharp]), lambda p: log_loss.score(targets, p, 0.5), False)
    assert weights[1] > 0.9
    assert weights.sum() == pytest.approx(1.0)


def test_correlation_matrix() -> None:
    matrix = correlation_matrix(np.stack([A, A, 1 - A]))
    assert np.allclose(np.diag(matrix), 1)
    assert matrix[0, 1] == pytest.approx(1.0) and matrix[0, 2] == pytest.approx(-1.0)


def test_bad_weights_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        mean_vote(MEMBERS, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="2 non-negative"):
        mean_vote(MEMBERS, np.array([1.0]))


def test_threshold_outside_unit_interval_is_one_line() -> None:
    from ..config import load_config

    with pytest.raises(ConfigError, match="config key 'pseudo.threshold'"):
        load_config(["pseudo.threshold=1.5"])
    with pytest.raises(ConfigError, match="config key 'submit.threshold'"):
        load_config(["submit.threshold=-0.1"])


@pytest.fixture
def two_runs(tmp_path: Path, competition: Path) -> tuple[list[str], Path]:
    overrides = [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs")]
    result = CliRunner().invoke(app, ["run", *overrides, "seeds=[0,1]", "experiment=pair"])
    assert result.exit_code == 0, result.output
    return overrides, tmp_path / "outputs"


def test_seed_runs_share_folds_and_blend(two_runs) -> None:
    _, outputs = two_runs
    assert (outputs / "pair-seed0" / "metrics.json").is_file() and (outputs / "pair-seed1" / "metrics.json").is_file()
    assert not (outputs / "pair-seed0" / "folds.csv").exists()  # both read outputs/pair/folds.csv
    blend = json.loads((outputs / "pair" / "ensemble.json").read_text())
    assert sorted(blend["weights"]) == [str(outputs / "pair-seed0"), str(outputs / "pair-seed1")]
    assert (outputs / "pair" / "submissions" / "submission.csv").is_file()
    oof = [pd.read_csv(outputs / f"pair-seed{s}" / "oof.csv").set_index("id").sort_index() for s in (0, 1)]
    blended = pd.read_csv(outputs / "pair" / "oof.csv").set_index("id").sort_index()
    classes = ["blue", "green", "red"]
    assert np.allclose(blended[classes], (oof[0][classes] + oof[1][classes]) / 2)


@pytest.mark.parametrize("weights", ["fit", "greedy", "[0.7,0.3]"])
def test_ensemble_command_fits_weights_and_submits(two_runs, weights: str) -> None:
    overrides, outputs = two_runs
    members = f"ensemble.members=[{outputs / 'pair-seed0'},{outputs / 'pair-seed1'}]"
    result = CliRunner().invoke(app, ["ensemble", *overrides, members, f"ensemble.weights={weights}", "experiment=b"])
    assert result.exit_code == 0, result.output
    report = json.loads((outputs / "b" / "ensemble.json").read_text())
    assert sum(report["weights"].values()) == pytest.approx(1.0)
    assert len(report["member_oof_scores"]) == 2 and "oof_score" in report
    assert np.array(report["correlation"]).shape == (2, 2)
    submitted = CliRunner().invoke(app, ["submit", *overrides, "experiment=b"])
    assert submitted.exit_code == 0, submitted.output


def test_mismatched_members_get_one_line(two_runs, tmp_path: Path) -> None:
    overrides, outputs = two_runs
    other = tmp_path / "other"
    (other / "predictions").mkdir(parents=True)
    oof = pd.read_csv(outputs / "pair-seed0" / "oof.csv")
    oof.iloc[:-1].to_csv(other / "oof.csv", index=False)
    test = pd.read_csv(outputs / "pair-seed0" / "predictions" / "test.csv")
    test.to_csv(other / "predictions" / "test.csv", index=False)
    members = f"ensemble.members=[{outputs / 'pair-seed0'},{other}]"
    result = CliRunner().invoke(app, ["ensemble", *overrides, members, "experiment=c"])
    assert result.exit_code == 2
    assert "OOF ids differ" in result.output
    wrong_weights = [f"ensemble.members=[{outputs / 'pair-seed0'},{outputs / 'pair-seed1'}]", "ensemble.weights=[1.0]"]
    result = CliRunner().invoke(app, ["ensemble", *overrides, *wrong_weights, "experiment=c"])
    assert result.exit_code == 2
    assert "ensemble.weights: weights must be 2 non-negative numbers" in result.output
    oof.rename(columns={"red": "crimson"}).to_csv(other / "oof.csv", index=False)
    result = CliRunner().invoke(app, ["ensemble", *overrides, members, "experiment=c"])
    assert result.exit_code == 2
    assert "class columns" in result.output


def test_data_ensemble_of_two_fold_splits(tmp_path: Path, competition: Path) -> None:
    overrides = [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs")]
    split_a, split_b = tmp_path / "split_a.yaml", tmp_path / "split_b.yaml"
    split_a.write_text("folds:\n  seed: 1\n")
    split_b.write_text("folds:\n  seed: 2\n")
    result = CliRunner().invoke(app, ["run", *overrides, "-e", str(split_a), "-e", str(split_b)])
    assert result.exit_code == 0, result.output
    outputs = tmp_path / "outputs"
    folds_a = pd.read_csv(outputs / "split_a" / "folds.csv").set_index("id")["fold"]
    folds_b = pd.read_csv(outputs / "split_b" / "folds.csv").set_index("id")["fold"]
    assert (folds_a != folds_b.loc[folds_a.index]).any()  # two different splits
    report = json.loads((outputs / "ensemble" / "ensemble.json").read_text())
    assert len(report["weights"]) == 2
    assert (outputs / "ensemble" / "submissions" / "submission.csv").is_file()
