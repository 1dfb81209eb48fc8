"""The classification submission: a label column or one probability column per class, shaped like the sample."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...core.data import id_stem
from ...core.errors import SubmissionError

# Metrics scored on probabilities: a one-column sample of a binary competition then wants P(positive class).
PROBABILITY_METRICS = ("log_loss", "roc_auc")


def submission_format(
    sample: pd.DataFrame,
    id_column: str,
    classes: list[str],
    requested: str,
    metric: str = "accuracy",
    multi_label: bool = False,
) -> str:
    """`probabilities` when the sample has a column per class, or one column of a binary competition scored on
    probabilities (log loss, ROC AUC); `labels` when it has one target column otherwise."""
    targets = [column for column in sample.columns if column != id_column]
    per_class = set(targets) == set(classes) and len(targets) > 1
    binary = len(targets) == 1 and len(classes) == 2 and not multi_label
    if requested == "probabilities" and not (per_class or binary):
        raise SubmissionError(
            f"submit.format=probabilities needs one sample column per class {classes[:6]} (or one column for a "
            f"binary target), but the sample's columns are {targets}"
        )
    if requested == "labels" and per_class:
        raise SubmissionError(f"submit.format=labels needs one target column; the sample has one per class {targets}")
    if requested != "auto":
        return requested
    if per_class or (binary and metric in PROBABILITY_METRICS):
        return "probabilities"
    if len(targets) == 1:
        return "labels"
    raise SubmissionError(
        f"sample submission columns {targets} are neither one label column nor one column per class {classes}"
    )


def describe_format(fmt: str, sample: pd.DataFrame, id_column: str, classes: list[str], metric: str) -> str:
    """What the submission will hold, in words (check prints it)."""
    targets = [column for column in sample.columns if column != id_column]
    if fmt == "labels":
        return f"labels in column '{targets[0]}'"
    if len(targets) == 1:
        return f"probabilities of class '{classes[-1]}' in column '{targets[0]}' (metric {metric})"
    return f"one probability column per class ({', '.join(targets[:4])}{', ...' if len(targets) > 4 else ''})"


def _label_values(labels: list[str], template: pd.Series) -> list:
    # Keep the sample's look: numeric labels stay numbers when the sample's column is numeric.
    numeric = pd.to_numeric(template, errors="coerce")
    if len(template) and numeric.notna().all():
        converted = pd.to_numeric(pd.Series(labels), errors="coerce")
        if converted.notna().all():
            return [int(v) if float(v).is_integer() else float(v) for v in converted]
    return labels


def build_submission(
    sample: pd.DataFrame,
    predictions: pd.DataFrame,
    classes: list[str],
    *,
    id_column: str,
    fmt: str,
    multi_label: bool = False,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Rows in the sample's id order and its columns, filled from `predictions` (id + class columns)."""
    by_id = predictions.set_index(predictions["id"].astype(str).map(id_stem))
    sample_ids = sample[id_column].astype(str).map(id_stem)  # sample ids may carry the image extension
    missing = sample_ids[~sample_ids.isin(by_id.index)]
    if len(missing):
        raise SubmissionError(f"predictions have no row for sample id '{missing.iloc[0]}' ({len(missing)} ids)")
    probabilities = by_id.loc[sample_ids, classes].to_numpy(dtype=np.float64)
    submission = pd.DataFrame({id_column: sample[id_column].to_numpy()})
    target = next(column for column in sample.columns if column != id_column)
    if fmt == "probabilities" and target not in classes:  # one column of a binary target: P(the second class)
        submission[target] = probabilities[:, -1]
        return submission
    if fmt == "probabilities":
        for index, name in enumerate(classes):
            submission[name] = probabilities[:, index]
        return submission[list(sample.columns)]
    if multi_label:
        labels = [" ".join(np.asarray(classes)[row >= threshold]) for row in probabilities]
    else:
        labels = [classes[i] for i in probabilities.argmax(axis=1)]
    submission[target] = _label_values(labels, sample[target])
    return submission


def validate_submission(submission: pd.DataFrame, sample: pd.DataFrame, *, id_column: str, fmt: str) -> None:
    """Raise SubmissionError for anything the competition would reject."""
    if list(submission.columns) != list(sample.columns):
        raise SubmissionError(f"columns {list(submission.columns)} differ from the sample's {list(sample.columns)}")
    if len(submission) != len(sample):
        raise SubmissionError(f"{len(submission)} rows but the sample submission has {len(sample)}")
    ids, expected = submission[id_column].astype(str), sample[id_column].astype(str)
    if ids.duplicated().any():
        raise SubmissionError(f"duplicate id '{ids[ids.duplicated()].iloc[0]}'")
    if set(ids) != set(expected):
        odd = sorted(set(ids) ^ set(expected))[0]
        raise SubmissionError(f"ids differ from the sample submission (e.g. '{odd}')")
    values = submission.drop(columns=[id_column])
    if values.isna().to_numpy().any():
        row, col = np.argwhere(values.isna().to_numpy())[0]
        raise SubmissionError(f"empty value in column '{values.columns[col]}' at row {row + 2}")
    if fmt == "probabilities":
        numbers = values.to_numpy(dtype=np.float64)
        if not np.isfinite(numbers).all() or (numbers < 0).any() or (numbers > 1).any():
            raise SubmissionError("probabilities must be finite numbers in [0, 1]")
