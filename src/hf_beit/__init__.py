"""hf_beit: BEiT for Hugging Face Transformers, faithful to the original unilm checkpoints and fast on CPU."""

from .configuration_beit import BEIT_PRESETS, BeitConfig
from .modeling_beit import (
    BeitForImageClassification,
    BeitForMaskedImageModeling,
    BeitModel,
    BeitPreTrainedModel,
)
from .modeling_segmentation import BeitForSemanticSegmentation
from .registration import register_auto_classes

__version__ = "0.1.0"


def __getattr__(name: str):
    # The image processor lives in its own module and pulls in torchvision; import it on first use.
    if name == "BeitImageProcessor":
        from .image_processing_beit import BeitImageProcessor

        return BeitImageProcessor
    raise AttributeError(f"module 'hf_beit' has no attribute {name!r}")


__all__ = [
    "BEIT_PRESETS",
    "BeitConfig",
    "BeitForImageClassification",
    "BeitForMaskedImageModeling",
    "BeitForSemanticSegmentation",
    "BeitImageProcessor",
    "BeitModel",
    "BeitPreTrainedModel",
    "register_auto_classes",
]
