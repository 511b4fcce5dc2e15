"""Auto-class registration that coexists with transformers' own "beit" model type.

transformers refuses a second ``model_type="beit"`` config, and ``exist_ok=True`` would redirect *its* BEiT to ours
for the whole process. We therefore never touch ``AutoConfig``. The Auto model mappings are keyed by the config
*class*, so registering our ``BeitConfig`` subclass only routes configs that are already hf_beit configs:
``AutoModelForImageClassification.from_config(hf_beit.BeitConfig(...))`` (or ``AutoBackbone.from_config``, which is
what transformers' ``load_backbone`` calls) builds an hf_beit model, while ``AutoModel*.from_pretrained(path)`` and
``AutoBackbone.from_pretrained(path)`` keep building transformers' models. To load a path with hf_beit, call the
hf_beit class (``hf_beit.BeitForImageClassification.from_pretrained(path)``) or ``hf_beit.inference.pipeline``.
"""

from __future__ import annotations

_REGISTERED = False


def register_auto_classes() -> None:
    """Register hf_beit's models and backbone with transformers' Auto classes, keyed by our config class (idempotent).

    The image processor is deliberately not registered: ``AutoImageProcessor`` finds processors by the *name* in
    ``preprocessor_config.json`` ("BeitImageProcessor"), so registering ours would hand it out for transformers' own
    BEiT repos too. Use ``hf_beit.BeitImageProcessor.from_pretrained`` (the pipelines do).
    """
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import (
        AutoBackbone,
        AutoModel,
        AutoModelForImageClassification,
        AutoModelForSemanticSegmentation,
    )

    from .configuration_beit import BeitConfig
    from .modeling_backbone import BeitBackbone
    from .modeling_beit import BeitForImageClassification, BeitModel
    from .modeling_segmentation import BeitForSemanticSegmentation

    # exist_ok: our class shares the *name* "BeitConfig" with transformers'; the key is our class object itself.
    AutoModel.register(BeitConfig, BeitModel, exist_ok=True)
    AutoModelForImageClassification.register(BeitConfig, BeitForImageClassification, exist_ok=True)
    AutoModelForSemanticSegmentation.register(BeitConfig, BeitForSemanticSegmentation, exist_ok=True)
    AutoBackbone.register(BeitConfig, BeitBackbone, exist_ok=True)
    _REGISTERED = True
