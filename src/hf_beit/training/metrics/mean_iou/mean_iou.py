"""Mean IoU, mean class accuracy and pixel accuracy as an offline ``evaluate`` module."""

import datasets
import evaluate

from hf_beit.training.metrics.functional import mean_iou

_DESCRIPTION = "Semantic-segmentation mIoU (mmseg definition), mean class accuracy and pixel accuracy."
_KWARGS = """
Args:
    predictions (list of 2-D int arrays): predicted label maps.
    references (list of 2-D int arrays): reference label maps, same shapes.
    num_labels (int): number of classes.
    ignore_index (int, default 255): reference value excluded from every count.
    reduce_labels (bool, default False): map references 0 -> ignore_index and k -> k - 1 first.
Returns:
    mean_iou, mean_accuracy, pixel_accuracy (float); per_category_iou, per_category_accuracy (list, NaN = absent).
"""


class MeanIoU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                    "references": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                }
            ),
        )

    def _compute(self, predictions, references, num_labels: int, ignore_index: int = 255, reduce_labels: bool = False):
        return mean_iou(predictions, references, num_labels, ignore_index=ignore_index, reduce_labels=reduce_labels)
