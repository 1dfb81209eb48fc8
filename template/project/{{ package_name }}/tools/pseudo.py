"""Pseudo-labelling: the task's labeller turns confident test predictions into labels, and each round retrains
with them in every fold's training part (never in validation) on the same folds, so CV before and after compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config, load_config, with_overrides
from ..core.data import read_test_table
from ..core.errors import DataError
from ..core.run_config import with_run_values_for_auto
from ..core.runs import RunPaths, read_json, validation_score, write_json
from ..predict import predict
from ..tasks import SPEC, create_task
from ..train import train


def source_settings(paths: RunPaths) -> Config | None:
    """The resolved config of the run the labels come from (a blend's: its first member's), or None."""
    if paths.config.is_file():
        return load_config(base=paths.config)
    blend = paths.root / "ensemble.json"
    members = list(read_json(blend)["weights"]) if blend.is_file() else []
    first = RunPaths(Path(members[0])).config if members else None
    return load_config(base=first) if first is not None and first.is_file() else None


def pseudo(config: Config) -> list[dict[str, Any]]:
    """Rounds of: label confident predictions, retrain into <experiment>-pseudo<r>, predict again."""
    paths = RunPaths.from_config(config)
    if not paths.metrics.is_file() or not paths.classes.is_file():
        raise DataError(f"{paths.root}: no trained run (metrics.json, classes.json); run train first")
    labeller = SPEC.parts.pseudo()
    task = create_task(config, read_json(paths.classes))
    source = Path(config.pseudo.source or paths.test_predictions)
    test = read_test_table(config.data)
    image_paths = dict(zip(test["id"].astype(str), test["path"], strict=True))
    cv_before = validation_score(read_json(paths.metrics))
    source_config = source_settings(paths)
    if source_config is not None:  # settings train took from the data (auto anchors) stay: only the data changes
        config = with_run_values_for_auto(source_config, config)
    rounds = []
    for round_number in range(1, config.pseudo.rounds + 1):
        round_dir = RunPaths(config.output_dir / f"{config.experiment}-pseudo{round_number}")
        labels = labeller.write_pseudo_labels(task, config, source, image_paths, round_dir.root)
        changes = {
            "experiment": round_dir.root.name,
            "data": {"pseudo_labels": str(labels["file"])},
            "folds": {"path": str(paths.folds)},  # the same folds: CV before and after compare
        }
        round_config = with_overrides(with_overrides(config, changes), labeller.round_overrides(config))
        trained = train(round_config)
        metrics = trained.metrics
        predict(trained.config)  # with what train fitted to the data
        rounds.append(
            {
                "round": round_number,
                "selected": labels["selected"],
                "of": labels["of"],
                **{key: value for key, value in labels.items() if key not in ("file", "selected", "of")},
                "cv_before": cv_before,
                "cv_after": metrics["cv_mean"],
                "run": str(round_dir.root),
            }
        )
        print(
            f"pseudo round {round_number}: {labels['selected']}/{labels['of']} test images labelled; "
            f"CV {cv_before:.4f} -> {metrics['cv_mean']:.4f}"
        )
        cv_before, source = metrics["cv_mean"], round_dir.test_predictions
    write_json(paths.root / "pseudo.json", rounds)
    return rounds
