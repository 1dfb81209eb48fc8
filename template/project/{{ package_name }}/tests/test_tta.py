"""TTA views on tiny tensors with exact expected values, and the averaging."""

from __future__ import annotations

import pytest
import torch

from ..core.report.analysis import tta_choice_notes
from ..core.tta import TTA_VIEWS, get_view, select_views, tta_probabilities

GRID = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("identity", [[1, 2], [3, 4]]),
        ("hflip", [[2, 1], [4, 3]]),
        ("vflip", [[3, 4], [1, 2]]),
        ("rot90", [[2, 4], [1, 3]]),
        ("rot180", [[4, 3], [2, 1]]),
        ("rot270", [[3, 1], [4, 2]]),
        ("transpose", [[1, 3], [2, 4]]),
    ],
)
def test_views_move_pixels_exactly(name: str, expected: list[list[int]]) -> None:
    assert get_view(name)(GRID)[0, 0].tolist() == expected


def test_scale_view_resizes() -> None:
    assert get_view("scale_1.5")(torch.zeros(2, 3, 8, 8)).shape == (2, 3, 12, 12)


def test_unknown_view_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown 'spin'; expected one of .*hflip"):
        get_view("spin")
    with pytest.raises(ValueError):
        get_view("scale_x")


def test_tta_averages_the_views_probabilities() -> None:
    # A "model" whose output is the top-left pixel and its complement: identity sees 1, hflip sees 2.
    def predict(x: torch.Tensor) -> torch.Tensor:
        top_left = x[:, 0, 0, 0:1] / 10
        return torch.cat([top_left, 1 - top_left], dim=1)

    mean = tta_probabilities(predict, GRID, ["identity", "hflip", "vflip"])  # sees 1, 2, 3
    assert torch.allclose(mean, torch.tensor([[0.2, 0.8]]))
    assert torch.allclose(mean.sum(dim=1), torch.ones(1))


def test_identity_only_equals_the_plain_prediction() -> None:
    images = torch.rand(3, 3, 4, 4)
    assert torch.equal(tta_probabilities(lambda x: x.mean(dim=(2, 3)), images, ["identity"]), images.mean(dim=(2, 3)))


def test_all_registered_views_keep_batch_and_channels() -> None:
    images = torch.rand(2, 3, 6, 6)
    for view in TTA_VIEWS.values():
        assert view(images).shape[:2] == (2, 3)


def test_select_views_keeps_a_view_only_when_the_score_holds() -> None:
    scores = {"identity": 0.90, "identity+hflip": 0.80, "identity+vflip": 0.90, "identity+vflip+rot90": 0.95}
    asked: list[str] = []

    def score(views: list[str]) -> float:
        asked.append("+".join(views))
        return scores["+".join(views)]

    chosen, tried = select_views(["identity", "hflip", "vflip", "rot90"], score)
    assert chosen == ["identity", "vflip", "rot90"]  # hflip lowered the score; vflip tied and stays
    assert tried == scores and asked == list(scores)


def test_select_views_for_a_loss_keeps_what_lowers_it() -> None:
    losses = {"identity": 0.5, "identity+hflip": 0.4, "identity+hflip+vflip": 0.6}
    chosen, _ = select_views(["identity", "hflip", "vflip"], lambda v: losses["+".join(v)], higher_is_better=False)
    assert chosen == ["identity", "hflip"]
    with pytest.raises(ValueError, match="at least one view"):
        select_views([], lambda v: 0.0)


def test_the_analysis_turns_the_oof_choice_of_views_into_advice() -> None:
    tta = {
        "key": {"candidates": ["identity", "hflip", "scale_1.2"]},
        "metric": "map50",
        "images": 40,
        "scores": {"identity": 0.70, "identity+hflip": 0.65, "identity+scale_1.2": 0.74},
        "chosen": ["identity", "scale_1.2"],
    }
    findings, advice = tta_choice_notes(tta)
    assert findings == ["TTA view scale_1.2 kept: OOF map50 0.7000 -> 0.7400 on 40 validation images"]
    assert advice == [
        "drop hflip from predict.tta: it lowered the OOF map50 0.7000 -> 0.6500 on 40 validation images "
        "(predict already leaves it out)"
    ]
