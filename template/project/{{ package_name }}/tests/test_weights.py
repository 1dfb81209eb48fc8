"""Weight averaging: SWA, snapshot checkpoints, uniform and greedy soups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ..cli import app
from ..errors import ModelError
from ..soup import average_state_dicts, check_same_architecture, greedy_soup
from .conftest import CSV_LAYOUT, fast_overrides


def test_average_state_dicts_is_the_mean_and_keeps_integer_buffers() -> None:
    first = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    second = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)}
    averaged = average_state_dicts([first, second])
    assert averaged["w"].tolist() == [2.0, 4.0]
    assert averaged["n"].item() == 3


def test_soup_of_one_equals_it() -> None:
    state = {"w": torch.randn(3, 3)}
    assert torch.equal(average_state_dicts([state])["w"], state["w"])


def test_greedy_soup_keeps_only_what_holds_the_score() -> None:
    # Score = minus distance of w to 1.0: a (w=1) is best; b (w=3) would move the soup away; c (w=1) is kept.
    candidates = [
        ("b", {"w": torch.tensor([3.0])}),
        ("a", {"w": torch.tensor([1.0])}),
        ("c", {"w": torch.tensor([1.0])}),
    ]
    state, chosen, score = greedy_soup(candidates, lambda s: -abs(float(s["w"]) - 1.0))
    assert chosen == ["a", "c"]
    assert float(state["w"]) == pytest.approx(1.0) and score == pytest.approx(0.0)


def test_soup_of_different_architectures_is_refused() -> None:
    with pytest.raises(ModelError, match="soup: b is another architecture than a"):
        check_same_architecture([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}], ["a", "b"])


@pytest.fixture
def overrides(tmp_path: Path, competition: Path) -> list[str]:
    return [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs"), "train.epochs=4"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_swa_snapshots_and_soup_are_ensemble_members(tmp_path: Path, overrides: list[str]) -> None:
    train = [
        "train.swa=true",
        "train.swa_start_epoch=2",
        "train.scheduler=cosine_restarts",
        "train.restarts=2",
        "train.snapshots=true",
    ]
    result = invoke("run", *overrides, *train)
    assert result.exit_code == 0, result.output
    fold = tmp_path / "outputs" / "baseline" / "fold_0"
    for name in ("best", "last", "swa", "snapshot_1", "snapshot_2"):
        assert (fold / f"{name}.pt").is_file(), name
    assert "swa_score" in json.loads((fold / "metrics.json").read_text())
    assert "SWA of 2 epochs" in result.output
    swa = torch.load(fold / "swa.pt", weights_only=True)
    assert swa["meta"]["backbone"] == "test_resnet"

    snapshots = invoke("predict", *overrides, "predict.checkpoints=[snapshot_1,snapshot_2]")
    assert snapshots.exit_code == 0, snapshots.output
    soup = invoke("soup", *overrides, "soup.checkpoints=[best,last,swa]", "soup.method=greedy")
    assert soup.exit_code == 0, soup.output
    report = json.loads((tmp_path / "outputs" / "baseline" / "soup.json").read_text())
    assert set(report["folds"]) == {"0", "1"}
    assert all(1 <= len(f["ingredients"]) <= 3 for f in report["folds"].values())
    uniform = invoke("soup", *overrides, "soup.checkpoints=[best,last]", "soup.method=uniform")
    assert uniform.exit_code == 0, uniform.output
    best = torch.load(fold / "best.pt", weights_only=True)["model"]
    last = torch.load(fold / "last.pt", weights_only=True)["model"]
    souped = torch.load(fold / "soup.pt", weights_only=True)["model"]
    key = next(k for k, v in best.items() if v.is_floating_point())
    assert torch.allclose(souped[key], (best[key] + last[key]) / 2)
    assert invoke("predict", *overrides, "predict.checkpoints=[soup]").exit_code == 0


def test_soup_with_another_architecture_is_one_line(tmp_path: Path, overrides: list[str]) -> None:
    assert invoke("run", *overrides, "train.epochs=1").exit_code == 0
    other = [*overrides, "train.epochs=1", "experiment=other", "model.backbone=test_efficientnet"]
    assert invoke("run", *other).exit_code == 0
    result = invoke("soup", *overrides, f"soup.runs=[{tmp_path / 'outputs' / 'other'}]", "soup.checkpoints=[best]")
    assert result.exit_code == 2
    assert "is another architecture than" in result.output
