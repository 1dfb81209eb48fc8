"""`check`: a preflight before training. Config, labels, folds, sample submission and every image (decoded in
parallel, truncated files included) are checked, and every problem found is reported at once."""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from .config import Config
from .core.data import LabelledTable, check_test_ids, listed_train_images, read_sample_submission, read_test_table
from .core.errors import ProjectError, one_line
from .core.recipe import HALVING_COST, budget_can_halve, fit_to_data, propose_image_size
from .folds import table_folds
from .settings import Problem, problem_from, settings_problems
from .tasks import SPEC, create_task, read_train_table


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    images: int = 0  # images decoded
    seconds: float = 0.0  # spent decoding them
    advice: list[str] = field(default_factory=list)  # settings the data suggests
    submission: str = ""  # what submit will write, in the sample's shape

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def decode_image(path: str) -> tuple[str | None, float]:
    """(None, side: the square root of width x height) when the file decodes whole; else (why not, 0). PIL
    refuses truncated files that OpenCV decodes silently."""
    try:
        with Image.open(path) as image:
            image.load()
            return None, (image.width * image.height) ** 0.5
    except FileNotFoundError:
        return "image not found", 0.0
    except UnidentifiedImageError:
        return "cannot decode image (corrupt, empty or not an image)", 0.0
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        detail = " ".join(str(error).replace(repr(path), "").split())
        return f"cannot decode image ({detail[:100]})", 0.0


def scan_images(paths: list[str], workers: int) -> tuple[list[Problem], list[float]]:
    """Decode every image in `workers` processes (in this one when workers <= 1): the problems, and each
    image's side (0 for one that does not decode)."""
    if workers <= 1 or len(paths) < 64:
        results = list(map(decode_image, paths))
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(decode_image, paths, chunksize=max(len(paths) // (workers * 8), 16)))
    problems = [Problem(path, what) for path, (what, _) in zip(paths, results, strict=True) if what]
    return problems, [side for _, side in results]


def check_folds(config: Config, table: LabelledTable) -> list[Problem]:
    """The fold strategy against the labels, as `folds` would split them."""
    try:
        table_folds(config, table)
    except ProjectError as error:
        return [problem_from(error, "folds.strategy")]
    return []


def check_test(config: Config, classes: list[str] | None, report: CheckReport) -> list[str]:
    """The sample submission against the test folder and, once the classes are known, against what the task will
    write (report.submission says what); returns the test image paths."""
    data = config.data
    source = str(data.root / data.sample_submission)
    try:
        test = read_test_table(data)
    except ProjectError as error:
        report.problems.append(problem_from(error, str(data.root / data.test_images)))
        return []
    try:
        sample = read_sample_submission(data, per_class=SPEC.sample_rows_per_class)
        check_test_ids(sample, test["id"], data.id_column, data.root / data.sample_submission)
    except ProjectError as error:
        report.problems.append(problem_from(error, source))
        return test["path"].tolist()
    if classes is not None:
        try:
            report.submission = create_task(config, classes).check_sample(sample)
        except ProjectError as error:  # its message names columns and keys, not the file
            report.problems.append(Problem(source, one_line(error)))
    return test["path"].tolist()


def _fitted_to_data(config: Config, table: LabelledTable) -> list[str]:
    """What train will take from the data (core/recipe.py), with one fold held out, each with its reason."""
    n_splits = config.folds.n_splits
    try:
        fitted, choices = fit_to_data(
            config, table, len(table.frame) * (n_splits - 1) // n_splits, 1, lambda c: create_task(c, table.classes)
        )
    except ProjectError:  # a setting the config checks above already report
        return []
    notes = [f"train will fit to the data: {choice.reason}" for choice in choices]
    train = fitted.train
    if train.time_budget_minutes is not None and train.fit_batch_to_budget and budget_can_halve(train.batch_size):
        notes.append(
            f"train will time a training step and lower train.batch_size (from {train.batch_size}) where the budget "
            f"would buy fewer than train.time_budget_min_steps={train.time_budget_min_steps} updates and a smaller "
            f"batch slows an image by at most {HALVING_COST:g}x (train.fit_batch_to_budget)"
        )
    return notes


def _mask_paths(table: LabelledTable) -> list[str]:
    return [target["mask"] for target in table.targets if isinstance(target, dict) and "mask" in target]


def run_check(config: Config, workers: int | None = None) -> CheckReport:
    """Every check; the report lists all problems (an empty list: ready to train)."""
    report = CheckReport(problems=settings_problems(config))
    classes = None
    try:
        table = read_train_table(config.data, check_images=False)
    except ProjectError as error:  # the labels stopped reading: the images they name are still decoded
        report.problems.append(problem_from(error, str(config.data.root)))
        image_paths = listed_train_images(config.data)
        train_images = len(image_paths)
    else:
        classes = table.classes
        report.problems.extend(check_folds(config, table))
        report.advice.extend(_fitted_to_data(config, table))
        image_paths = table.frame["path"].astype(str).tolist()
        train_images = len(image_paths)
        image_paths.extend(_mask_paths(table))
    image_paths.extend(check_test(config, classes, report))
    started = time.perf_counter()
    problems, sides = scan_images(image_paths, workers or os.cpu_count() or 1)
    report.problems.extend(problems)
    report.seconds, report.images = time.perf_counter() - started, len(image_paths)
    train_sides = [side for side in sides[:train_images] if side > 0]
    median_side = statistics.median(train_sides) if train_sides else 0.0
    proposal = propose_image_size(median_side, config.model.image_size)
    if proposal is not None:
        report.advice.append(proposal[1])
    report.advice.extend(SPEC.image_advice(config, median_side))
    return report
