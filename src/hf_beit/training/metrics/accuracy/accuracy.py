"""Top-1 accuracy as an offline ``evaluate`` module (``evaluate.load(<this directory>)``)."""

import datasets
import evaluate

from hf_beit.training.metrics.functional import accuracy

_DESCRIPTION = "Fraction of predicted class ids equal to the reference class ids."
_KWARGS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): reference class ids.
Returns:
    accuracy (float): in [0, 1].
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": accuracy(predictions, references)}
