"""Checkpoint families: the facts shared by every released checkpoint of one model family, declared once.

A family says how its checkpoints are built (architecture switches the weights cannot tell apart, such as the
visual-token vocabulary or the block feeding BEiT v2's CLS-pretraining head), how they are preprocessed (the
processor preset of each task and the normalisation), where the original files live and in which format, and
what their model cards credit (paper, code, licence, citation). The registry's entries name their family; the
converter, the release cards and the tests read the facts from here. A new family is one declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..image_processing_beit import BeitImageProcessor

# Processor preset kind per task (see BeitImageProcessor.from_preset); MIM and embeddings use the ImageNet one.
_PRESET_KIND = {"segmentation": "ade20k"}


@dataclass(frozen=True)
class Licence:
    """The licence of a family's weights as released, for the card metadata and text.

    ``spdx`` is the Hub metadata id (``"other"`` with ``name``/``link`` when the upstream text names no SPDX
    licence); ``text`` is the card's sentence, which also says where a Hub copy declares something else.
    """

    spdx: str
    text: str
    name: str | None = None
    link: str | None = None
    restriction: str = ""  # a use restriction worth a line under Limitations


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
    licence: Licence
    tokenizer: str  # the visual tokenizer whose codes the MIM head predicts ("" when there is none), for cards
    objective: str  # one sentence on the pre-training objective, for cards
    code_repo: str = "microsoft/unilm"  # the repository holding code_url
    evaluation: str = "unilm's evaluation"  # whose evaluation transform the processor reproduces
    domain: str = "ImageNet (and ADE20k) web photos"  # what the data looks like, for the limitations
    photos: bool = True  # False: the card's example photo is outside the model's domain (documents)
    download_url: str = "https://github.com/addf400/files/releases/download/v1.0/{}.pth"
    source_format: str = "unilm"  # "unilm": original .pth files; "transformers": a Hub repo (save_pretrained)
    weight_prefix: str = "beit"  # base-model prefix of the weights in a transformers-format source repo
    patch_size: int = 16
    vocab_size: int = 8192
    absolute_positions: bool = False  # else relative position bias (shared when pre-training)
    shared_relative_when_finetuned: bool = False  # data2vec keeps one shared table after fine-tuning
    pretrained_mean_pooling: bool = True  # False: the pre-trained encoder ends with a LayerNorm (data2vec)
    layer_scale: bool = True
    normalization: str = "inception"  # BeitImageProcessor normalisation of classification/MIM inputs
    # BEiT v2: the CLS-pretraining head reads the patch tokens after this many blocks, per (model size, blocks)
    cls_pretraining_early_layers: tuple[tuple[str, int], ...] = ()
    segmentation_auxiliary_channels: int = 256
    segmentation_pool_scales: int = 4

    def preprocessor(self, task: str, image_size: int) -> BeitImageProcessor:
        """The processor that reproduces the original evaluation of a ``task`` checkpoint at ``image_size``."""
        kind = _PRESET_KIND.get(task, "imagenet-eval")
        normalization = None if kind == "ade20k" else self.normalization  # mmseg normalises with ImageNet's
        return BeitImageProcessor.from_preset(kind, image_size=image_size, normalization=normalization)

    def early_layers(self, size: str) -> int | None:
        """Blocks before BEiT v2's CLS-pretraining head for a model ``size`` (None: the family has no such head)."""
        return dict(self.cls_pretraining_early_layers).get(size)


_NO_RELICENSING = "hf_beit does not relicense the weights; the `license: mit` metadata follows the authors' repository."
_UNILM_MIT = Licence(
    "mit",
    "The authors released these weights in [microsoft/unilm](https://github.com/microsoft/unilm), whose repository "
    "licence is MIT; copies of BEiT weights on other hosts (the Hub's transformers conversions, timm, Azure ML) are "
    f"labelled apache-2.0 there. {_NO_RELICENSING}",
)

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
    licence=_UNILM_MIT,
    tokenizer="DALL-E",
    objective="about 40% of the patches (75 of 196) are masked block-wise and the model predicts their DALL-E dVAE "
    "codes",
)
# The ImageNet-1k-only pre-training released for analysis: absolute positions, no layer scale, ImageNet mean/std.
BEIT_PT1K = replace(BEIT, name="beit-pt1k", absolute_positions=True, layer_scale=False, normalization="imagenet")

_BEITV2_CITATION = """@article{peng2022beitv2,
  title   = {BEiT v2: Masked Image Modeling with Vector-Quantized Visual Tokenizers},
  author  = {Peng, Zhiliang and Dong, Li and Bao, Hangbo and Ye, Qixiang and Wei, Furu},
  journal = {arXiv preprint arXiv:2208.06366},
  year    = {2022}
}"""

# microsoft/unilm beit2/: v1's architecture; ImageNet mean/std everywhere (--imagenet_default_mean_and_std);
# pre-training adds two CLS-pretraining blocks fed from block 9 (base) / 21 (large) (--early_layers).
BEITV2 = CheckpointFamily(
    name="beitv2",
    title="BEiT v2",
    paper_title="BEiT v2: Masked Image Modeling with Vector-Quantized Visual Tokenizers",
    paper_url="https://arxiv.org/abs/2208.06366",
    authors="Peng, Dong, Bao, Ye, Wei",
    code_url="https://github.com/microsoft/unilm/tree/master/beit2",
    citation=_BEITV2_CITATION,
    licence=_UNILM_MIT,
    tokenizer="VQ-KD",
    objective="75 of 196 patches are masked block-wise and the model predicts their VQ-KD codes (a tokenizer "
    "distilled from CLIP ViT-B/16 features), plus the same prediction from a two-block head that sees only the "
    "final CLS token and early patch tokens (CLS pre-training)",
    domain="ImageNet (and ADE20k) web photos",
    download_url="https://github.com/addf400/files/releases/download/BEiT-v2/{}.pth",
    normalization="imagenet",
    cls_pretraining_early_layers=(("base", 9), ("large", 21)),
)

_DIT_CITATION = """@article{li2022dit,
  title   = {DiT: Self-supervised Pre-training for Document Image Transformer},
  author  = {Li, Junlong and Xu, Yiheng and Lv, Tengchao and Cui, Lei and Zhang, Cha and Wei, Furu},
  journal = {arXiv preprint arXiv:2203.02378},
  year    = {2022}
}"""

# microsoft/unilm dit/: BEiT pre-training on IIT-CDIP documents with absolute position embeddings and layer scale;
# classification fine-tuned with --abs_pos_emb --disable_rel_pos_bias; inputs normalised with 0.5 (127.5).
DIT = CheckpointFamily(
    name="dit",
    title="DiT",
    paper_title="DiT: Self-supervised Pre-training for Document Image Transformer",
    paper_url="https://arxiv.org/abs/2203.02378",
    authors="Li, Xu, Lv, Cui, Zhang, Wei",
    code_url="https://github.com/microsoft/unilm/tree/master/dit",
    citation=_DIT_CITATION,
    licence=Licence(
        "mit",
        "The authors released these weights with [microsoft/unilm](https://github.com/microsoft/unilm) (DiT), whose "
        f"repository licence is MIT; the Hub cards of microsoft/dit-* declare no licence. {_NO_RELICENSING}",
    ),
    tokenizer="dVAE",
    objective="patches are masked block-wise and the model predicts their discrete-VAE (dVAE) codes, BEiT's "
    "objective",
    domain="scanned and born-digital document images (IIT-CDIP, RVL-CDIP), not natural photos",
    photos=False,
    download_url="https://huggingface.co/HYPJUDY/dit/resolve/main/dit-pts/{}.pth",
    absolute_positions=True,
)

_DATA2VEC_CITATION = """@article{baevski2022data2vec,
  title   = {data2vec: A General Framework for Self-supervised Learning in Speech, Vision and Language},
  author  = {Baevski, Alexei and Hsu, Wei-Ning and Xu, Qiantong and Babu, Arun and Gu, Jiatao and Auli, Michael},
  journal = {arXiv preprint arXiv:2202.03555},
  year    = {2022}
}"""

# facebookresearch/data2vec_vision (a fork of unilm's beit/): one shared relative table also after fine-tuning;
# transformers' copy of BEiT stores it as model_type "data2vec-vision" with the weight prefix "data2vec_vision.".
DATA2VEC_VISION = CheckpointFamily(
    name="data2vec-vision",
    title="data2vec-vision",
    paper_title="data2vec: A General Framework for Self-supervised Learning in Speech, Vision and Language",
    paper_url="https://arxiv.org/abs/2202.03555",
    authors="Baevski, Hsu, Xu, Babu, Gu, Auli",
    code_url="https://github.com/facebookresearch/data2vec_vision/tree/main/beit",
    citation=_DATA2VEC_CITATION,
    licence=Licence(
        "other",
        "CC-BY-NC, non-commercial (facebookresearch/data2vec_vision: \"Data2Vec is licensed under CC-BY-NC\"). The "
        "Hub cards of facebook/data2vec-vision-* declare apache-2.0, which is the licence of transformers' code, not "
        "of these weights",
        name="cc-by-nc",
        link="https://github.com/facebookresearch/data2vec_vision/tree/main/beit#license",
        restriction="Non-commercial use only (CC-BY-NC, as released by the authors), whatever the Hub copy says.",
    ),
    tokenizer="",
    domain="ImageNet web photos",
    code_repo="facebookresearch/data2vec_vision",
    evaluation="the original evaluation (data2vec_vision's fine-tuning script, unilm's transform)",
    objective="masked patches regress the average of the last six block outputs of an EMA teacher that sees the "
    "whole image (no visual tokenizer; the released weights have no prediction head)",
    download_url="https://huggingface.co/facebook/{}",
    source_format="transformers",
    weight_prefix="data2vec_vision",
    shared_relative_when_finetuned=True,
    pretrained_mean_pooling=False,
)

FAMILIES: dict[str, CheckpointFamily] = {
    family.name: family for family in (BEIT, BEIT_PT1K, BEITV2, DIT, DATA2VEC_VISION)
}
