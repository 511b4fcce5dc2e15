"""Checkpoint families: the facts shared by every released checkpoint of one model family, declared once.

A family says how its checkpoints are built (architecture switches the weights cannot tell apart, such as the
visual-token vocabulary), how they are preprocessed (the processor preset of each task and the normalisation),
and what their model cards credit (paper, code, licence, citation). The registry's entries name their family;
the converter, the release cards and the tests read the facts from here. A new family is one declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..image_processing_beit import BeitImageProcessor

# Processor preset kind per task (see BeitImageProcessor.from_preset); MIM and embeddings use the ImageNet one.
_PRESET_KIND = {"segmentation": "ade20k"}


@dataclass(frozen=True)
class CheckpointFamily:
    """Facts shared by the released checkpoints of one family."""

    name: str
    title: str  # the model's name in cards, e.g. "BEiT"
    paper_title: str
    paper_url: str
    authors: str
    code_url: str
    citation: str  # BibTeX
    licence: str  # SPDX id of the code and weights as released
    tokenizer: str  # what the pre-training predicts, for cards
    patch_size: int = 16
    vocab_size: int = 8192
    absolute_positions: bool = False  # else relative position bias (shared when pre-training)
    layer_scale: bool = True
    normalization: str = "inception"  # BeitImageProcessor normalisation of classification/MIM inputs
    segmentation_auxiliary_channels: int = 256
    segmentation_pool_scales: int = 4

    def preprocessor(self, task: str, image_size: int) -> BeitImageProcessor:
        """The processor that reproduces the original evaluation of a ``task`` checkpoint at ``image_size``."""
        kind = _PRESET_KIND.get(task, "imagenet-eval")
        normalization = None if kind == "ade20k" else self.normalization  # mmseg normalises with ImageNet's
        return BeitImageProcessor.from_preset(kind, image_size=image_size, normalization=normalization)


_BEIT_CITATION = """@article{bao2021beit,
  title   = {BEiT: BERT Pre-Training of Image Transformers},
  author  = {Bao, Hangbo and Dong, Li and Piao, Songhao and Wei, Furu},
  journal = {arXiv preprint arXiv:2106.08254},
  year    = {2021}
}"""

BEIT = CheckpointFamily(
    name="beit",
    title="BEiT",
    paper_title="BEiT: BERT Pre-Training of Image Transformers",
    paper_url="https://arxiv.org/abs/2106.08254",
    authors="Bao, Dong, Piao, Wei",
    code_url="https://github.com/microsoft/unilm/tree/master/beit",
    citation=_BEIT_CITATION,
    licence="mit",
    tokenizer="DALL-E dVAE visual tokens",
)
# The ImageNet-1k-only pre-training released for analysis: absolute positions, no layer scale, ImageNet mean/std.
BEIT_PT1K = replace(BEIT, name="beit-pt1k", absolute_positions=True, layer_scale=False, normalization="imagenet")

FAMILIES: dict[str, CheckpointFamily] = {family.name: family for family in (BEIT, BEIT_PT1K)}
