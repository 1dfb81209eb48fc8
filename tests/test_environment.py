"""The installed environment: opencv-python (augraphy) and opencv-python-headless (albumentations) share one
cv2 folder, so they must be the same release and cv2 must work after the install."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np


def test_one_working_cv2_from_both_opencv_packages() -> None:
    import cv2

    assert version("opencv-python") == version("opencv-python-headless")
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    assert np.array_equal(cv2.imdecode(encoded, cv2.IMREAD_COLOR), image)


def test_albumentations_and_augraphy_import_together() -> None:
    import albumentations
    import augraphy

    assert albumentations.__version__ and augraphy.AugraphyPipeline
