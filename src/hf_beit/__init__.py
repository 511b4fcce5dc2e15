"""hf_beit: BEiT for Hugging Face Transformers, faithful to the original unilm checkpoints and fast on CPU."""

from ._lazy import by_module, lazy_attributes

__version__ = "0.1.0"

# Everything is imported on first use (torch and transformers take seconds to import), so `hf-beit --help` and
# sub-commands that need little start fast; `from hf_beit import BeitModel` works as usual.
_LAZY = by_module({
    "configuration_beit": ("BEIT_PRESETS", "BeitConfig"),
    "modeling_beit": ("BeitForImageClassification", "BeitForMaskedImageModeling", "BeitModel", "BeitPreTrainedModel"),
    "modeling_segmentation": ("BeitForSemanticSegmentation",),
    "modeling_backbone": ("BeitBackbone",),
    "registration": ("register_auto_classes",),
    "image_processing_beit": ("BeitImageProcessor",),
    "masking": ("MaskingGenerator",),
    "tokenizers.dalle": ("DalleEncoder",),
    "tokenizers.kmeans": ("KMeansPatchTokenizer",),
    "tokenizers.base": ("load_visual_tokenizer",),
    "tokenizers.vqkd": ("VQKDTokenizer",),
    "cls_pretraining": ("BeitClsPretrainingHead",),
    "acceleration": ("optimize_for_inference",),
    "inference.pipelines": ("pipeline",),
})

_SUBPACKAGES = ("acceleration", "conversion", "evaluation", "export", "inference", "pretraining", "probing",
                "tokenizers", "training")

__getattr__ = lazy_attributes(__name__, _LAZY, _SUBPACKAGES)


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
