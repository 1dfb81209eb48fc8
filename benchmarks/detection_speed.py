"""Detection: training images/s of the demo's detector on its digit scenes, and the time per image of merging
5 TTA views with WBF against NMS (ensemble-boxes). Run: python benchmarks/detection_speed.py [--smoke]
(--smoke: 48 scenes, 2 steps of 4 an epoch, 10 images merged)"""

from __future__ import annotations

import argparse
import json

from _project import cpu_threads, demo_training_speed, one_thread_when
from podium.demo import DETECTION_ANSWERS, DETECTION_OVERRIDES, write_scenes_competition

MERGE_TIMING = """
import time, numpy as np
from {package}.tasks.detection.postprocess import merge_boxes
rng = np.random.default_rng(0)
def view():
    xy = rng.uniform(0, 900, (60, 2))
    wh = rng.uniform(20, 120, (60, 2))
    return {{"boxes": np.concatenate([xy, xy + wh], 1), "scores": rng.uniform(0.05, 1, 60),
             "labels": rng.integers(0, 5, 60)}}
images = [[view() for _ in range(5)] for _ in range(10 if {smoke} else 200)]
result = {{}}
for method in ("nms", "wbf", "soft_nms", "nmw"):
    merge_boxes(images[0], (1024.0, 1024.0), method, 0.55, 0.0)  # warm-up: first-call costs are not per image
    started = time.perf_counter()
    for parts in images:
        merge_boxes(parts, (1024.0, 1024.0), method, 0.55, 0.0)
    result[method] = (time.perf_counter() - started) / len(images) * 1000
print(result)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds: to check the benchmark runs")
    args = parser.parse_args()
    one_thread_when(args.smoke)
    images_per_second, line = demo_training_speed(
        DETECTION_ANSWERS, DETECTION_OVERRIDES, write_scenes_competition, MERGE_TIMING, smoke=args.smoke
    )
    merge = json.loads(line.replace("'", '"'))
    print(
        f"training: {images_per_second:.1f} images/s of {DETECTION_ANSWERS['image_size']} px digit scenes "
        "(epoch 2, from its first batch to its last step, the loader's waits included; "
        f"{DETECTION_ANSWERS['architecture']} on {DETECTION_ANSWERS['backbone']}, {cpu_threads()} CPU threads)"
    )
    print("merging 5 TTA views of 60 boxes per image (ms per image):")
    for method, milliseconds in merge.items():
        print(f"  {method:9s} {milliseconds:7.2f} ms  ({milliseconds / merge['nms']:.2f}x NMS)")


if __name__ == "__main__":
    main()
