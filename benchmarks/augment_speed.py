"""Images/s of the albumentations medium preset over its torchvision v2 counterpart (target >= 2.0).

python benchmarks/augment_speed.py [--image-size 224 --images 200]
"""

from __future__ import annotations

import sys

from _project import run_in_project

if __name__ == "__main__":
    run_in_project("tools.bench", ["augment", *sys.argv[1:]])
