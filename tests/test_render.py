"""Render the real template over an answer matrix: exact file set, no Jinja left, config loads."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from podium.answers import load_answers_file
from podium.render import create_project
from podium.templates import content_hash

from .conftest import EXAMPLES_DIR, TEMPLATE_DIR

PACKAGE_FILES = {
    "__init__.py",
    "__main__.py",
    "cli.py",
    "config.py",
    "pipeline.py",
    "check.py",
    "export.py",
    "export_onnx.py",
    "folds.py",
    "train.py",
    "predict.py",
    "submit.py",
    "core/__init__.py",
    "core/augment.py",
    "core/blend.py",
    "core/budget.py",
    "core/checkpoints.py",
    "core/commands.py",
    "core/fold.py",
    "core/fold_file.py",
    "core/callbacks.py",
    "core/data.py",
    "core/distributed.py",
    "core/engine.py",
    "core/loaders.py",
    "core/probe.py",
    "core/errors.py",
    "core/metrics.py",
    "core/parallel.py",
    "core/perf.py",
    "core/recipe.py",
    "core/strict.py",
    "core/task_config.py",
    "core/console.py",
    "core/kaggle_image.py",
    "core/kaggle_cli.py",
    "core/registry.py",
    "core/runs.py",
    "core/run_config.py",
    "settings.py",
    "core/task.py",
    "core/ledger.py",
    "core/report/eda_context.py",
    "core/tracking.py",
    "core/tta.py",
    "core/weights.py",
    "core/wheels.py",
    "tasks/__init__.py",
    "tools/__init__.py",
    "core/report/analysis.py",
    "tools/analyze.py",
    "tools/ensemble.py",
    "tools/soup.py",
    "tools/pseudo.py",
    "tools/eda.py",
    "tools/eda_stats.py",
    "tools/commands.py",
    "tools/preview.py",
    "core/report/page.py",
    "tools/tune.py",
    "tools/tune_search.py",
    "tools/tune_study.py",
    "tools/tune_report.py",
    "tools/run_plots.py",
    "core/report/plots.py",
    "core/report/eda_figures.py",
    "core/report/__init__.py",
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/test_bad_inputs.py",
    "tests/test_budget.py",
    "tests/test_recipe.py",
    "tests/test_probe.py",
    "tests/test_offline_weights.py",
    "tests/test_export.py",
    "tests/test_config.py",
    "tests/test_folds.py",
    "tests/test_layout.py",
    "tests/test_task_spec.py",
    "tests/test_tta.py",
    "tests/test_tune.py",
    "tests/test_ddp.py",
    "tests/test_run_folder.py",
    "tests/test_perf.py",
    "tests/test_gpu_paths.py",
    "tests/test_console.py",
    "tests/test_kaggle_image.py",
    "tests/image_environment.py",
    "tests/test_report_style.py",
}
# Each task renders its own package, the tools that support it and the tests of both.
TASK_FILES = {
    "classification": {
        *(
            f"tasks/classification/{name}.py"
            for name in (
                "__init__",
                "task",
                "model",
                "loss",
                "labels",
                "metric",
                "submission",
                "eda",
                "blend",
                "analysis",
                "plots",
                "pseudo",
            )
        ),
        "core/report/explain.py",
        "tests/test_data.py",
        "tests/test_ddp_nodes.py",
        "tests/test_pipeline.py",
        "tests/test_analysis.py",
        "tests/test_augment.py",
        "tests/test_eda.py",
        "tests/test_ensemble.py",
        "tests/test_metrics.py",
        "tests/test_submit.py",
        "tests/test_weights.py",
        "tests/test_model.py",
        "tests/test_pseudo.py",
    },
    "detection": {
        *(
            f"tasks/detection/{name}.py"
            for name in (
                "__init__",
                "task",
                "model",
                "data",
                "labels",
                "boxes",
                "postprocess",
                "metric",
                "submission",
                "eda",
                "blend",
                "analysis",
                "plots",
                "pseudo",
                "recipe",
            )
        ),
        "core/coco.py",
        "tests/test_detection.py",
        "tests/test_detection_analysis.py",
        "tests/test_detection_tools.py",
        "tests/test_detection_eda.py",
    },
    "segmentation": {
        *(
            f"tasks/segmentation/{name}.py"
            for name in (
                "__init__",
                "task",
                "model",
                "loss",
                "data",
                "labels",
                "postprocess",
                "metric",
                "submission",
                "eda",
                "blend",
                "analysis",
                "plots",
                "pseudo",
                "recipe",
            )
        ),
        "core/coco.py",
        "core/report/explain.py",
        "tests/test_segmentation.py",
        "tests/test_segmentation_analysis.py",
        "tests/test_segmentation_tools.py",
        "tests/test_segmentation_recipe.py",
        "tests/test_segmentation_eda.py",
    },
}
TOP_FILES = {
    ".copier-answers.yml",
    ".gitignore",
    "README.md",
    "pyproject.toml",
    "configs/default.yaml",
    "configs/kaggle_image.txt",
    "configs/experiment/smoke.yaml",
    "configs/experiment/strong.yaml",
}

# Each task gets the augmentation presets it can train with (detection's are bbox-safe; torchvision's are
# classification's only).
AUG_PRESETS = {
    "classification": [
        "light",
        "medium",
        "heavy",
        "document",
        "document_augraphy",
        "no_flip",
        "tv_autoaugment",
        "tv_randaugment",
        "tv_trivialaugment",
        "tv_medium",
    ],
    "detection": ["detection", "detection_no_flip"],
    "segmentation": ["segmentation", "no_flip"],
}

LAYOUTS = ["csv", "folders"]
LABEL_MODES = ["single_label", "multi_label"]
METRICS = ["accuracy", "f1_macro", "log_loss", "roc_auc"]
WANDB_MODES = ["offline", "online", "disabled"]
# Layout and label mode interact (folders are single-label); metric and W&B mode are cycled through.
MATRIX = (
    [
        {"data_layout": layout, "label_mode": mode, "metric": METRICS[i % 4], "wandb_mode": WANDB_MODES[i % 3]}
        for i, (layout, mode) in enumerate(itertools.product(LAYOUTS, LABEL_MODES))
        if not (layout == "folders" and mode == "multi_label")
    ]
    + [
        {"task": "detection", "data_layout": layout, "metric": metric, "wandb_mode": "disabled"}
        for layout, metric in (("coco", "map"), ("boxes_csv", "map50"), ("voc", "kaggle_map"))
    ]
    + [
        {"task": "segmentation", "data_layout": layout, "metric": metric, "wandb_mode": "offline"}
        for layout, metric in (("masks", "dice"), ("rle_csv", "iou"), ("coco_polygons", "dice"))
    ]
)


def rendered_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


def code_map_paths(readme: Path) -> set[str]:
    """Every file the README's code map ("| what | edit |") names in its last column, relative to the project."""
    table = readme.read_text().split("| what | edit |", 1)[1].split("\n\n", 1)[0]
    cells = [row.rsplit("|", 2)[-2] for row in table.splitlines() if row.startswith("|")]
    named = {name for cell in cells for name in re.findall(r"`([^`]+)`", cell)}
    assert len(named) > 20, table
    files = {name for name in named if re.fullmatch(r"[\w/]+\.(py|yaml)", name)}
    return {name if name.startswith("configs/") else f"matrix/{name}" for name in files}


def load_rendered_config(project: Path, package: str) -> dict:
    code = f"from {package}.config import load_config; import json; print(load_config().model_dump_json())"
    result = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize("answers", MATRIX, ids=lambda a: "-".join(a.values()))
def test_render_matrix(tmp_path: Path, answers: dict) -> None:
    project = create_project(tmp_path / "p", data={"project_name": "Matrix", **answers}, defaults=True, quiet=True)
    data_note = "data/README.md"
    package_files = PACKAGE_FILES | TASK_FILES[answers.get("task", "classification")]
    presets = {f"configs/aug/{name}.yaml" for name in AUG_PRESETS[answers.get("task", "classification")]}
    expected = TOP_FILES | presets | {f"matrix/{name}" for name in package_files} | {data_note}
    assert rendered_files(project) == expected
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            text = path.read_text()
            assert "{{" not in text and "{%" not in text, path
    assert code_map_paths(project / "README.md") - expected == set()  # the code map names files the task has
    config = load_rendered_config(project, "matrix")
    assert config["data"]["layout"] == answers["data_layout"]
    assert config["task"] == answers.get("task", "classification")
    assert config["data"]["multi_label"] is (
        answers.get("label_mode") == "multi_label" and answers["data_layout"] == "csv"
    )
    assert config["metric"] == answers["metric"]
    assert config["wandb"]["mode"] == answers["wandb_mode"]


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES_DIR.glob("*.yml")))
def test_examples_render(tmp_path: Path, example: str) -> None:
    answers = load_answers_file(EXAMPLES_DIR / example)
    project = create_project(tmp_path / "p", data=answers, defaults=True, quiet=True)
    config = load_rendered_config(project, answers["package_name"])
    assert config["model"]["backbone"] == answers["backbone"]
    assert config["data"]["id_column"] == answers["id_column"]
    if answers["data_layout"] in ("csv", "boxes_csv"):
        assert config["data"]["target_columns"] == [answers["target_columns"]]
    if answers.get("task") == "detection":
        assert config["detection"]["architecture"] == answers["architecture"]
        assert config["folds"]["strategy"] == "multilabel_stratified_kfold"
    if answers.get("task") == "segmentation":
        assert config["segmentation"]["architecture"] == answers["segmentation_architecture"]
        assert config["data"]["rle_column"] == answers["rle_column"]


def test_comma_separated_targets_become_a_list(tmp_path: Path) -> None:
    answers = {"project_name": "Cols", "label_mode": "multi_label", "target_columns": "cat, dog,bird"}
    project = create_project(tmp_path / "p", data=answers, defaults=True, quiet=True)
    assert load_rendered_config(project, "cols")["data"]["target_columns"] == ["cat", "dog", "bird"]


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"package_name": "my-comp"}, "lower-case Python identifier"),
        ({"package_name": "torch"}, "shadow a library"),
        ({"image_ext": "png"}, "must start with a dot"),
        ({"image_size": 4}, "between 16 and 4096"),
        ({"label_mode": "multi_label", "metric": "qwk"}, "needs single-label"),
    ],
)
def test_validators_reject_bad_answers(tmp_path: Path, answers: dict, message: str) -> None:
    from podium.errors import PodiumError

    with pytest.raises(PodiumError, match=message):
        create_project(tmp_path / "p", data=answers, defaults=True, quiet=True)


def test_caches_in_the_template_never_reach_projects(tmp_path: Path, template_copy: Path) -> None:
    cache = template_copy / "project" / "{{ package_name }}" / "__pycache__"
    cache.mkdir()
    (cache / "config.cpython-311.pyc").write_bytes(b"\0")
    assert content_hash(template_copy) == content_hash(TEMPLATE_DIR)
    # Rendering straight from the folder (no store) still drops it: copier.yml's _exclude names it.
    project = create_project(tmp_path / "p", template=str(template_copy), defaults=True, quiet=True, init_git=False)
    assert not [p for p in project.rglob("*") if "__pycache__" in p.parts]


@pytest.mark.parametrize(
    ("pretrained", "expected"),
    [
        (True, {"architecture": "fasterrcnn_resnet50_fpn_v2", "fpn_channels": 256, "roi_head_channels": 1024}),
        (False, {"architecture": "fasterrcnn", "fpn_channels": 64, "roi_head_channels": 256, "roi_batch_size": 64}),
    ],
)
def test_detector_default_follows_pretrained(tmp_path: Path, pretrained: bool, expected: dict) -> None:
    """From scratch, the default detector is the light Faster R-CNN on the timm backbone; with weights, torchvision's
    COCO-trained ResNet-50 FPN. An explicit architecture answer wins either way."""
    answers = {"project_name": "Det", "task": "detection", "data_layout": "coco", "pretrained": pretrained}
    project = create_project(tmp_path / "p", data=answers, defaults=True, quiet=True)
    detection = load_rendered_config(project, "det")["detection"]
    assert {key: detection[key] for key in expected} == expected
    chosen = create_project(
        tmp_path / "q", data={**answers, "architecture": "fcos_resnet50_fpn"}, defaults=True, quiet=True
    )
    assert load_rendered_config(chosen, "det")["detection"]["architecture"] == "fcos_resnet50_fpn"
