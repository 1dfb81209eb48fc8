"""Submissions follow the sample's columns and id order; validation catches each bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ..data import check_test_ids
from ..errors import DataError, SubmissionError
from ..submit import build_submission, submission_format, validate_submission

CLASSES = ["0", "1", "2"]
SAMPLE = pd.DataFrame({"id": ["c", "a", "b"], "label": [0, 0, 0]})
PREDICTIONS = pd.DataFrame({"id": ["a", "b", "c"], "0": [0.7, 0.1, 0.2], "1": [0.2, 0.8, 0.2], "2": [0.1, 0.1, 0.6]})


def test_labels_in_sample_order_and_type() -> None:
    fmt = submission_format(SAMPLE, "id", CLASSES, "auto")
    assert fmt == "labels"
    submission = build_submission(SAMPLE, PREDICTIONS, CLASSES, id_column="id", fmt=fmt)
    assert submission["id"].tolist() == ["c", "a", "b"]
    assert submission["label"].tolist() == [2, 0, 1]
    assert submission["label"].dtype.kind == "i"
    validate_submission(submission, SAMPLE, id_column="id", fmt=fmt)


def test_probability_columns_when_the_sample_has_them() -> None:
    sample = pd.DataFrame({"id": ["b", "a", "c"], "2": 0.0, "0": 0.0, "1": 0.0})
    fmt = submission_format(sample, "id", CLASSES, "auto")
    assert fmt == "probabilities"
    submission = build_submission(sample, PREDICTIONS, CLASSES, id_column="id", fmt=fmt)
    assert list(submission.columns) == ["id", "2", "0", "1"]
    assert submission.iloc[0].tolist() == ["b", 0.1, 0.1, 0.8]


def test_multi_label_tags_above_threshold() -> None:
    sample = pd.DataFrame({"id": ["a", "b"], "tags": ["x", "x"]})
    predictions = pd.DataFrame({"id": ["a", "b"], "cat": [0.9, 0.2], "dog": [0.6, 0.1]})
    submission = build_submission(
        sample, predictions, ["cat", "dog"], id_column="id", fmt="labels", multi_label=True, threshold=0.5
    )
    assert submission["tags"].tolist() == ["cat dog", ""]


def test_missing_prediction_for_a_sample_id() -> None:
    with pytest.raises(SubmissionError, match="no row for sample id 'c'"):
        build_submission(SAMPLE, PREDICTIONS.iloc[:2], CLASSES, id_column="id", fmt="labels")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.iloc[:2], "2 rows but the sample submission has 3"),
        (lambda s: s.assign(id=["c", "a", "z"]), "ids differ from the sample submission"),
        (lambda s: s.assign(id=["c", "a", "a"]), "duplicate id 'a'"),
        (lambda s: s.assign(label=[1, np.nan, 2]), "empty value in column 'label' at row 3"),
        (lambda s: s.rename(columns={"label": "target"}), "columns"),
    ],
)
def test_validation_catches_bad_submissions(mutate, message: str) -> None:
    good = build_submission(SAMPLE, PREDICTIONS, CLASSES, id_column="id", fmt="labels")
    with pytest.raises(SubmissionError, match=message):
        validate_submission(mutate(good), SAMPLE, id_column="id", fmt="labels")


def test_probabilities_out_of_range() -> None:
    sample = pd.DataFrame({"id": ["a"], "0": [0.0], "1": [0.0]})
    bad = pd.DataFrame({"id": ["a"], "0": [1.2], "1": [-0.2]})
    with pytest.raises(SubmissionError, match=r"in \[0, 1\]"):
        validate_submission(bad, sample, id_column="id", fmt="probabilities")


def test_sample_ids_must_match_the_test_folder() -> None:
    with pytest.raises(DataError, match="sample.csv: ids differ from the test folder \\('c' has no test image\\)"):
        check_test_ids(SAMPLE, pd.Series(["a", "b"]), "id", "sample.csv")
    with pytest.raises(DataError, match="test image 'd' is not listed"):
        check_test_ids(SAMPLE, pd.Series(["a", "b", "c", "d"]), "id", "sample.csv")
    # Cassava and Severstal list ids with their extension: they match the images all the same.
    with_extension = SAMPLE.assign(id=SAMPLE["id"] + ".png")
    check_test_ids(with_extension, pd.Series(["a", "b", "c"]), "id", "sample.csv")


def test_sample_ids_with_extension_get_their_predictions() -> None:
    sample = pd.DataFrame({"id": ["b.jpg", "a.jpg"], "label": ["x", "x"]})
    predictions = pd.DataFrame({"id": ["a", "b"], "x": [0.9, 0.2], "y": [0.1, 0.8]})
    submission = build_submission(sample, predictions, ["x", "y"], id_column="id", fmt="labels")
    assert submission.to_dict("list") == {"id": ["b.jpg", "a.jpg"], "label": ["y", "x"]}


def test_unrecognised_sample_columns() -> None:
    sample = pd.DataFrame({"id": ["a"], "x": [0], "y": [0]})
    with pytest.raises(SubmissionError, match="neither one label column nor one column per class"):
        submission_format(sample, "id", CLASSES, "auto")
