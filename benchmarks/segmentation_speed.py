"""Segmentation: training images/s of the demo's U-Net on its digit masks, and the cost of each TTA view relative
to plain inference (same model, same batch). Run: python benchmarks/segmentation_speed.py [--smoke]
(--smoke: 48 scenes, 2 steps of 4 an epoch, TTA timed on 4 images once)"""

from __future__ import annotations

import argparse
import json

from _project import cpu_threads, demo_training_speed, one_thread_when
from podium.demo import SEGMENTATION_ANSWERS, SEGMENTATION_OVERRIDES, write_masks_competition

TTA_TIMING = """
import json, time, torch
from {package}.config import load_config
from {package}.tasks import create_task
from {package}.core.tta import map_probabilities
torch.manual_seed(0)
config = load_config({overrides!r})
task = create_task(config, config.data.classes)
model = task.create_model(pretrained=False).eval()
images = torch.rand(4 if {smoke} else 32, 3, config.model.image_size, config.model.image_size)
def merged(views):
    return map_probabilities(lambda x: task.probabilities(model(x)), images, views, hard=False, multilabel=False)
def seconds(views, repeats=1 if {smoke} else 5):
    with torch.inference_mode():
        merged(views)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            merged(views)
    return (time.perf_counter() - started) / repeats
plain = seconds(["identity"])
result = {{"plain_ms_per_image": plain / len(images) * 1000}}
for views in (["identity", "hflip"], ["identity", "hflip", "vflip", "rot90"], ["identity", "scale_1.5"]):
    result["+".join(views)] = seconds(views) / plain
print(json.dumps(result))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    images_per_second, line = demo_training_speed(
        SEGMENTATION_ANSWERS, SEGMENTATION_OVERRIDES, write_masks_competition, TTA_TIMING, smoke=args.smoke
    )
    tta = json.loads(line)
    print(
        f"training: {images_per_second:.1f} images/s of {SEGMENTATION_ANSWERS['image_size']} px digit masks "
        "(epoch 2, from its first batch to its last step, the loader's waits included; "
        f"{SEGMENTATION_ANSWERS['segmentation_architecture']} on tu-{SEGMENTATION_ANSWERS['backbone']}, "
        f"{cpu_threads()} CPU threads)"
    )
    print(f"plain inference: {tta.pop('plain_ms_per_image'):.2f} ms per image (batch {4 if args.smoke else 32})")
    for views, ratio in tta.items():
        print(f"  TTA {views:32s} {ratio:5.2f}x plain inference ({ratio / len(views.split('+')):.2f}x per view)")


if __name__ == "__main__":
    main()
