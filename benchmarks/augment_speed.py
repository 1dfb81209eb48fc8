"""Images/s of the albumentations medium preset over its torchvision v2 counterpart (target >= 2.0).

python benchmarks/augment_speed.py [--image-size 224 --images 200] [--smoke]   (--smoke: 10 images, one repeat)
"""

from __future__ import annotations

import sys

from _project import one_thread_when, run_in_project

SMOKE = ["--images", "10", "--repeats", "1", "--image-size", "64"]

if __name__ == "__main__":
    smoke = "--smoke" in sys.argv
    one_thread_when(smoke)
    arguments = [word for word in sys.argv[1:] if word != "--smoke"]
    run_in_project("tools.bench", ["augment", *(SMOKE if smoke else []), *arguments])
