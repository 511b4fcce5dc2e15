"""Multi-label F1 (micro/macro) and mAP as an offline ``evaluate`` module (``evaluate.load(<this directory>)``)."""

import datasets
import evaluate

from hf_beit.training.metrics.functional import multilabel_metrics

_DESCRIPTION = "Micro and macro F1 of thresholded scores, and mean average precision over classes."
_KWARGS = """
Args:
    predictions (list of list of float): per-class logits, shape (N, num_classes).
    references (list of list of int): multi-hot targets, shape (N, num_classes).
    threshold (float, default 0.5): a class is predicted when its sigmoid probability is above it.
Returns:
    f1_micro, f1_macro, mAP (float): in [0, 1]; mAP averages only classes with at least one positive.
"""


class MultiLabel(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references, threshold: float = 0.5):
        return multilabel_metrics(predictions, references, threshold=threshold)
