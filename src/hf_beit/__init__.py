"""hf_beit: BEiT for Hugging Face Transformers, faithful to the original unilm checkpoints and fast on CPU."""

from ._lazy import lazy_attributes
from .configuration_beit import BEIT_PRESETS, BeitConfig
from .modeling_backbone import BeitBackbone
from .modeling_beit import (
    BeitForImageClassification,
    BeitForMaskedImageModeling,
    BeitModel,
    BeitPreTrainedModel,
)
from .modeling_segmentation import BeitForSemanticSegmentation
from .registration import register_auto_classes

__version__ = "0.1.0"


# Heavier parts (torchvision, scipy, datasets) are imported on first use.
_LAZY = {
    "BeitClsPretrainingHead": "cls_pretraining",
    "BeitImageProcessor": "image_processing_beit",
    "MaskingGenerator": "masking",
    "DalleEncoder": "tokenizers.dalle",
    "KMeansPatchTokenizer": "tokenizers.kmeans",
    "VQKDTokenizer": "tokenizers.vqkd",
    "load_visual_tokenizer": "tokenizers.base",
    "optimize_for_inference": "acceleration",
    "pipeline": "inference.pipelines",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "BEIT_PRESETS",
    "BeitBackbone",
    "BeitClsPretrainingHead",
    "BeitConfig",
    "BeitForImageClassification",
    "BeitForMaskedImageModeling",
    "BeitForSemanticSegmentation",
    "BeitImageProcessor",
    "BeitModel",
    "BeitPreTrainedModel",
    "DalleEncoder",
    "KMeansPatchTokenizer",
    "MaskingGenerator",
    "VQKDTokenizer",
    "load_visual_tokenizer",
    "optimize_for_inference",
    "pipeline",
    "register_auto_classes",
]
