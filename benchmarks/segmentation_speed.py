"""Segmentation: training images/s of the demo's U-Net on its digit masks, and the cost of each TTA view relative
to plain inference (same model, same batch). Run: python benchmarks/segmentation_speed.py"""

from __future__ import annotations

import json

from _project import demo_training_speed
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
images = torch.rand(32, 3, config.model.image_size, config.model.image_size)
def seconds(views, repeats=5):
    with torch.inference_mode():
        map_probabilities(lambda x: task.probabilities(model(x)), images, views, hard=False)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            map_probabilities(lambda x: task.probabilities(model(x)), images, views, hard=False)
    return (time.perf_counter() - started) / repeats
plain = seconds(["identity"])
result = {{"plain_ms_per_image": plain / len(images) * 1000}}
for views in (["identity", "hflip"], ["identity", "hflip", "vflip", "rot90"], ["identity", "scale_1.5"]):
    result["+".join(views)] = seconds(views) / plain
print(json.dumps(result))
"""


def main() -> None:
    images_per_second, line = demo_training_speed(
        SEGMENTATION_ANSWERS, SEGMENTATION_OVERRIDES, write_masks_competition, TTA_TIMING
    )
    tta = json.loads(line)
    print(
        f"training: {images_per_second:.1f} images/s of {SEGMENTATION_ANSWERS['image_size']} px digit masks "
        "(one epoch without validation, data loading included; "
        f"{SEGMENTATION_ANSWERS['segmentation_architecture']} on tu-{SEGMENTATION_ANSWERS['backbone']}, 2 CPU threads)"
    )
    print(f"plain inference: {tta.pop('plain_ms_per_image'):.2f} ms per image (batch 32)")
    for views, ratio in tta.items():
        print(f"  TTA {views:32s} {ratio:5.2f}x plain inference ({ratio / len(views.split('+')):.2f}x per view)")


if __name__ == "__main__":
    main()
