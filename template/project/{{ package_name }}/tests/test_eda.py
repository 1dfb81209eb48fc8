"""EDA statistics on images built to have them: blur, duplicates, corrupt files, rotated test set, shift."""

from __future__ import annotations

import json
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from ..cli import app
from ..eda import duplicate_groups, image_features, orientation_mismatch
from .conftest import CSV_LAYOUT, fast_overrides


def _stripes(rng: np.random.Generator, vertical: bool = False, size: int = 48) -> np.ndarray:
    """Horizontal text-like lines (or the same rotated by 90 degrees) with noise."""
    image = np.full((size, size, 3), 230, np.uint8)
    for row in range(4, size - 4, 8):
        start = int(rng.integers(2, 10))
        image[row : row + 2, start : size - int(rng.integers(2, 10))] = 20
    image = np.clip(image.astype(int) + rng.integers(-8, 8, image.shape), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.rot90(image)) if vertical else image


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    """Train: horizontal lines, one blurred, one duplicated, one corrupt, one empty; test: rotated by 90."""
    rng = np.random.default_rng(0)
    root = tmp_path / "docs"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = []
    for i in range(16):
        image = _stripes(rng)
        if i == 3:
            image = cv2.GaussianBlur(image, (9, 9), 4)
        Image.fromarray(image).save(root / "train" / f"d{i:02d}.png")
        rows.append({"id": f"d{i:02d}", "label": "ab"[i % 2]})
    (root / "train" / "d05.png").write_bytes((root / "train" / "d04.png").read_bytes())  # exact duplicate
    (root / "train" / "d07.png").write_bytes(b"\x89PNG broken")
    (root / "train" / "d08.png").write_bytes(b"")
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    for i in range(12):
        Image.fromarray(_stripes(rng, vertical=True)).save(root / "test" / f"t{i:02d}.png")
    pd.DataFrame({"id": [f"t{i:02d}" for i in range(12)], "label": "a"}).to_csv(
        root / "sample_submission.csv", index=False
    )
    return root


def test_image_features_report_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"junk")
    assert image_features(str(tmp_path / "empty.png"))["error"] == "empty file (0 bytes)"
    assert image_features(str(tmp_path / "junk.png"))["error"].startswith("cannot decode")
    assert image_features(str(tmp_path / "none.png"))["error"].startswith("unreadable")


def test_noise_sigma_matches_added_noise_and_skimage() -> None:
    from skimage.restoration import estimate_sigma

    from ..eda import noise_sigma

    rng = np.random.default_rng(0)
    smooth = np.tile(np.linspace(40, 200, 128, dtype=np.float32), (128, 1))
    for sigma in (5.0, 15.0):
        noisy = np.clip(smooth + rng.normal(0, sigma, smooth.shape), 0, 255).astype(np.uint8)
        assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.15)
        assert noise_sigma(noisy) == pytest.approx(estimate_sigma(noisy), rel=0.15)


def test_duplicate_groups_exact_and_near() -> None:
    hashes = pd.Series(["ff00ff00ff00ff00", "ff00ff00ff00ff00", "ff00ff00ff00ff01", "0123456789abcdef"])
    assert duplicate_groups(hashes) == [[0, 1]]
    assert duplicate_groups(hashes, max_distance=1) == [[0, 1, 2]]


def test_orientation_mismatch_on_rotated_images() -> None:
    rng = np.random.default_rng(1)
    train = pd.DataFrame([{"orientation": image_orientation(_stripes(rng))} for _ in range(5)])
    rotated = pd.DataFrame([{"orientation": image_orientation(_stripes(rng, vertical=True))} for _ in range(5)])
    assert orientation_mismatch(train, rotated)
    assert not orientation_mismatch(train, train)


def image_orientation(image: np.ndarray) -> float:
    path = Path(f"/tmp/eda-orientation-{id(image)}.png")
    Image.fromarray(image).save(path)
    try:
        return image_features(str(path))["orientation"]
    finally:
        path.unlink()


def test_eda_report_finds_what_the_images_hold(tmp_path: Path, documents: Path) -> None:
    overrides = [*CSV_LAYOUT, *fast_overrides(documents, tmp_path / "outputs")]
    suggested = tmp_path / "suggested.yaml"
    result = CliRunner().invoke(
        app, ["eda", *overrides, "--output", str(tmp_path / "reports"), "--workers", "2", "--suggested", str(suggested)]
    )
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "reports" / "eda.json").read_text())
    assert {Path(i["path"]).name: i["error"] for i in stats["issues"]} == {
        "d07.png": "cannot decode (corrupt or not an image)",
        "d08.png": "empty file (0 bytes)",
    }
    assert [Path(p).name for p in stats["blurred"]] == ["d03.png"]
    assert [sorted(Path(p).name for p in g) for g in stats["exact_duplicates"]] == [["d04.png", "d05.png"]]
    assert stats["orientation_mismatch"] is True
    assert stats["adversarial_auc"] > 0.9
    assert stats["adversarial_features"][0]["feature"] == "orientation"
    assert stats["class_counts"] == {"a": 8, "b": 8} and stats["imbalance_ratio"] == 1.0
    assert "class_counts_per_fold" not in stats  # no fold file yet
    reasons = {r["transform"]: r["reason"] for r in stats["recommendations"]}
    assert "RandomRotate90" in reasons and "rotated" in reasons["RandomRotate90"]
    pipeline = A.load(str(suggested), data_format="yaml")
    assert any(type(t).__name__ == "RandomRotate90" for t in pipeline.transforms)
    page = (tmp_path / "reports" / "eda.html").read_text()
    assert "data:image/png;base64," in page and "adversarial validation AUC" in page


def test_eda_counts_classes_per_fold_and_flags_imbalance(tmp_path: Path, competition: Path) -> None:
    frame = pd.read_csv(competition / "train.csv")
    frame["label"] = ["red"] * 22 + ["blue"] * 2
    frame.to_csv(competition / "train.csv", index=False)
    overrides = [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs")]
    assert CliRunner().invoke(app, ["folds", *overrides]).exit_code == 0
    result = CliRunner().invoke(
        app,
        ["eda", *overrides, "--output", str(tmp_path / "r"), "--workers", "1", "--suggested", str(tmp_path / "s.yaml")],
    )
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "r" / "eda.json").read_text())
    assert stats["imbalance_ratio"] == 11.0 and "train.class_weights=balanced" in stats["imbalance_advice"]
    assert stats["class_counts_per_fold"] == {"0": {"blue": 1, "red": 11}, "1": {"blue": 1, "red": 11}}
