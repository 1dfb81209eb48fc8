"""Metrics on tiny arrays with known answers, and which direction is better."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ..metrics import create_metric

TARGETS = np.array([0, 1, 2, 2])
PROBS = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])


def test_accuracy_and_macro_f1() -> None:
    assert create_metric("accuracy").score(TARGETS, PROBS, 0.5) == pytest.approx(0.75)
    # Per class F1: class 0 2/3 (1 TP, 1 FP), class 1 1.0, class 2 2/3 (1 TP, 1 FN).
    assert create_metric("f1_macro").score(TARGETS, PROBS, 0.5) == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)


def test_log_loss() -> None:
    expected = -np.mean(np.log([0.8, 0.7, 0.7, 0.1]))
    assert create_metric("log_loss").score(TARGETS, PROBS, 0.5) == pytest.approx(expected)


def test_roc_auc_binary_and_multilabel() -> None:
    binary = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]])
    assert create_metric("roc_auc").score(np.array([0, 1, 1, 0]), binary, 0.5) == pytest.approx(1.0)
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    probs = np.array([[0.9, 0.4], [0.1, 0.8], [0.7, 0.3], [0.2, 0.1]])  # column 2: 3 of 4 pairs ranked right
    assert create_metric("roc_auc").score(targets, probs, 0.5) == pytest.approx((1.0 + 0.75) / 2)


def test_quadratic_weighted_kappa() -> None:
    perfect = create_metric("qwk").score(np.array([0, 1, 2]), np.eye(3), 0.5)
    assert perfect == pytest.approx(1.0)
    assert create_metric("qwk").score(np.array([0, 2]), np.array([[0, 0, 1.0], [1.0, 0, 0]]), 0.5) == pytest.approx(
        -1.0
    )


def test_multilabel_accuracy_is_exact_match() -> None:
    targets = np.array([[1, 0], [1, 1]], dtype=float)
    probs = np.array([[0.9, 0.1], [0.8, 0.3]])
    assert create_metric("accuracy").score(targets, probs, 0.5) == pytest.approx(0.5)
    assert create_metric("accuracy").score(targets, probs, 0.25) == pytest.approx(1.0)


def test_direction() -> None:
    assert create_metric("accuracy").is_improvement(0.9, 0.8)
    assert not create_metric("log_loss").is_improvement(0.9, 0.8)
    assert create_metric("log_loss").is_improvement(0.7, 0.8)
    assert create_metric("accuracy").is_improvement(0.1, None)
    assert create_metric("accuracy").is_improvement(0.1, math.nan)
