"""TTA views on tiny tensors with exact expected values, and the averaging."""

from __future__ import annotations

import pytest
import torch

from ..core.tta import TTA_VIEWS, get_view, tta_probabilities

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
