"""Bundled metrics against scikit-learn and hand-computed numbers; evaluate modules load offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    top_k_accuracy_score,
)
from transformers import EvalPrediction

from hf_beit.training.metrics import (
    METRIC_NAMES,
    accuracy,
    average_precision,
    load_metric,
    mean_iou,
    multilabel_metrics,
    top_k_accuracy,
)
from hf_beit.training.metrics.trainer_metrics import (
    segmentation_logits_to_labels,
    segmentation_metrics_fn,
    single_label_metrics,
)

RNG = np.random.default_rng(0)


def test_accuracy_and_top_k_match_sklearn():
    scores = RNG.normal(size=(50, 8))
    labels = RNG.integers(0, 8, size=50)
    assert accuracy(scores.argmax(1), labels) == pytest.approx(accuracy_score(labels, scores.argmax(1)))
    for k in (1, 3, 5):
        expected = top_k_accuracy_score(labels, scores, k=k, labels=np.arange(8))
        assert top_k_accuracy(scores, labels, k=k) == pytest.approx(expected)
    assert top_k_accuracy(scores, labels, k=8) == 1.0
    with pytest.raises(ValueError, match="same length"):
        accuracy([0, 1], [0])


def test_average_precision_matches_sklearn_including_ties():
    for _ in range(5):
        targets = RNG.integers(0, 2, size=40)
        targets[0] = 1
        scores = np.round(RNG.normal(size=40), 1)  # many ties
        assert average_precision(scores, targets) == pytest.approx(average_precision_score(targets, scores))
    assert np.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_multilabel_f1_and_map_match_sklearn():
    targets = RNG.integers(0, 2, size=(60, 5))
    scores = targets * 1.5 + RNG.normal(size=(60, 5))
    result = multilabel_metrics(scores - 0.75, targets)  # default: probability 0.5
    predicted = 1 / (1 + np.exp(-(scores - 0.75))) > 0.5
    strict = multilabel_metrics(scores, targets, threshold=0.9)
    assert strict["f1_micro"] == pytest.approx(f1_score(targets, 1 / (1 + np.exp(-scores)) > 0.9, average="micro"))
    with pytest.raises(ValueError, match="probability"):
        multilabel_metrics(scores, targets, threshold=0.0)
    assert result["f1_micro"] == pytest.approx(f1_score(targets, predicted, average="micro"))
    assert result["f1_macro"] == pytest.approx(f1_score(targets, predicted, average="macro"))
    assert result["mAP"] == pytest.approx(average_precision_score(targets, scores, average="macro"))


def test_mean_iou_by_hand():
    # classes 0/1/2, one ignored pixel
    reference = np.array([[0, 0, 1], [1, 2, 255]])
    prediction = np.array([[0, 1, 1], [1, 1, 0]])
    result = mean_iou([prediction], [reference], num_labels=3)
    # class 0: I=1, U=2 ; class 1: I=2, U=4 (predicted at 4 pixels) ; class 2: I=0, U=1
    assert result["per_category_iou"] == pytest.approx([1 / 2, 1 / 2, 0.0])
    assert result["mean_iou"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert result["per_category_accuracy"] == pytest.approx([1 / 2, 1.0, 0.0])
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)


def test_mean_iou_matches_sklearn_confusion_and_skips_absent_classes():
    references = [RNG.integers(0, 4, size=(6, 7)) for _ in range(3)]
    predictions = [np.where(RNG.random((6, 7)) < 0.7, r, RNG.integers(0, 4, size=(6, 7))) for r in references]
    result = mean_iou(predictions, references, num_labels=5)  # class 4 never appears
    cm = confusion_matrix(
        np.concatenate([r.ravel() for r in references]),
        np.concatenate([p.ravel() for p in predictions]),
        labels=range(5),
    )
    with np.errstate(invalid="ignore"):
        iou = np.diag(cm) / (cm.sum(0) + cm.sum(1) - np.diag(cm))
    assert np.isnan(result["per_category_iou"][4])
    assert result["mean_iou"] == pytest.approx(np.nanmean(iou))
    assert result["pixel_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())


def test_reduce_labels_and_range_checks():
    reference = np.array([[0, 1, 2], [3, 255, 1]])  # after reduction: 255, 0, 1 / 2, 255, 0
    prediction = np.array([[2, 0, 1], [2, 0, 1]])
    result = mean_iou([prediction], [reference], num_labels=3, reduce_labels=True)
    assert result["per_category_iou"] == pytest.approx([1 / 2, 1 / 2, 1.0])
    with pytest.raises(ValueError, match="reference ids"):
        mean_iou([prediction], [reference], num_labels=3)  # 3 is out of range without reduction


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def test_evaluate_modules_load_offline_and_agree():
    assert set(METRIC_NAMES) == {"accuracy", "top_k_accuracy", "multilabel", "mean_iou"}
    scores = RNG.normal(size=(20, 6))
    labels = RNG.integers(0, 6, size=20)
    assert load_metric("accuracy").compute(predictions=scores.argmax(1), references=labels)["accuracy"] == (
        pytest.approx(accuracy_score(labels, scores.argmax(1)))
    )
    top = load_metric("top_k_accuracy").compute(predictions=scores, references=labels, k=3)
    assert top["top_3_accuracy"] == pytest.approx(top_k_accuracy_score(labels, scores, k=3, labels=np.arange(6)))
    targets = RNG.integers(0, 2, size=(20, 4))
    multi = load_metric("multilabel").compute(predictions=scores[:, :4], references=targets)
    assert multi == pytest.approx(multilabel_metrics(scores[:, :4], targets))
    seg = load_metric("mean_iou").compute(
        predictions=[np.array([[0, 1], [1, 1]])], references=[np.array([[0, 1], [0, 255]])], num_labels=2
    )
    assert seg["mean_iou"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    with pytest.raises(ValueError, match="Unknown hf_beit metric"):
        load_metric("bleu")


def test_trainer_metric_callables():
    logits = RNG.normal(size=(30, 10))
    labels = RNG.integers(0, 10, size=30)
    result = single_label_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, logits.argmax(1)))
    assert result["top5_accuracy"] == pytest.approx(top_k_accuracy_score(labels, logits, k=5))
    seg_logits = torch.zeros(1, 2, 2, 2)
    seg_logits[0, 1, 0, :] = 1.0  # class-1 logit 1 on the top row; bilinear x2 gives rows 1, .75, .25, 0
    seg_labels = torch.tensor([[[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 255, 255]]])
    maps = segmentation_logits_to_labels(seg_logits, seg_labels)
    assert maps.shape == (1, 4, 4)
    metrics = segmentation_metrics_fn(2)(EvalPrediction(predictions=maps.numpy(), label_ids=seg_labels.numpy()))
    assert metrics["pixel_accuracy"] == pytest.approx(1.0)
    assert "per_category_iou" not in metrics
