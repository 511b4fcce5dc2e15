"""Top-k accuracy from class scores as an offline ``evaluate`` module (``evaluate.load(<this directory>)``)."""

import datasets
import evaluate

from hf_beit.training.metrics.functional import top_k_accuracy

_DESCRIPTION = "Fraction of samples whose reference class is among the k highest-scoring classes."
_KWARGS = """
Args:
    predictions (list of list of float): class scores or logits, shape (N, num_classes).
    references (list of int): reference class ids.
    k (int, default 5): how many top classes count as a hit.
Returns:
    top_{k}_accuracy (float): in [0, 1].
"""


class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k: int = 5):
        return {f"top_{k}_accuracy": top_k_accuracy(predictions, references, k=k)}
