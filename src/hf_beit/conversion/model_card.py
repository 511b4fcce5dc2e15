"""Model cards of converted repos: metadata via ``huggingface_hub.ModelCardData``, body from ``model_cards/``."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..image_processing_beit import BeitImageProcessor
from ..stock_taps import card_library, stock_taps_note
from .card_labels import label_text
from .card_usage import usage_blocks
from .example_image import EXAMPLE_CREDIT, example_image_path
from .families import BEIT, CheckpointFamily
from .model_stats import ModelStats
from .registry import ReleasedCheckpoint

TEMPLATE_PATH = Path(__file__).resolve().parents[3] / "model_cards" / "template.md"
_PIPELINE_TAGS = {
    "mim": "image-feature-extraction",
    "embeddings": "image-feature-extraction",
    "classification": "image-classification",
    "segmentation": "image-segmentation",
}
_DATASETS = {
    "imagenet-1k": "imagenet-1k",
    "imagenet-22k": "imagenet-21k",
    "ade20k": "scene_parse_150",
    "rvl-cdip": "aharley/rvl_cdip",
}
def _size_name(hidden_size: int) -> str | None:
    return {768: "base", 1024: "large"}.get(hidden_size)


def _number(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.3g}"


def _eval_results(entry: ReleasedCheckpoint | None) -> list[EvalResult] | None:
    if entry is None or not entry.metrics:
        return None
    family = entry.family
    return [
        EvalResult(
            task_type=m.task,
            dataset_type=m.dataset,
            dataset_name=m.dataset_name,
            metric_type=m.type,
            metric_value=m.value,
            metric_name=m.name,
            dataset_split="validation",
            source_name=f"{family.title} ({family.code_repo.split('/')[-1]} README)",
            source_url=family.code_url,
        )
        for m in entry.metrics
    ]


def _card_data(
    config, task: str, entry: ReleasedCheckpoint | None, model_name: str, family: CheckpointFamily, known: bool,
    base_model: str | None, head_trained: bool,
) -> ModelCardData:
    datasets = []
    if entry is not None:
        if "ImageNet" in entry.pretraining:
            datasets.append("imagenet-1k" if "ImageNet-1k" in entry.pretraining else "imagenet-21k")
        datasets += [_DATASETS[entry.label_set]] if entry.label_set else []
    pipeline_tag = _PIPELINE_TAGS[task] if head_trained else _PIPELINE_TAGS["embeddings"]
    tags = ["vision", "beit", "hf_beit", pipeline_tag] + (["masked-image-modeling"] if task == "mim" else [])
    if entry is not None and family.name not in tags:
        tags.insert(2, family.name)
    licence = family.licence
    extra = {"license_name": licence.name, "license_link": licence.link} if known and licence.name else {}
    return ModelCardData(
        license=licence.spdx if known else "other",
        library_name=card_library(task),
        pipeline_tag=pipeline_tag,
        tags=tags,
        base_model=base_model,
        datasets=sorted(set(datasets)) or None,
        model_name=model_name,
        eval_results=_eval_results(entry),
        **extra,
    )


def example_resized_size(processor: BeitImageProcessor) -> tuple[int, int]:
    """(width, height) of the example photo after ``processor`` (no crop: the resize alone)."""
    from PIL import Image

    with Image.open(example_image_path()) as image:
        pixel_values = processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
    return pixel_values.shape[-1], pixel_values.shape[-2]


def _preprocessing_text(
    processor: BeitImageProcessor, size: int, entry: ReleasedCheckpoint | None, family: CheckpointFamily
) -> str:
    stats = "0.5/0.5" if tuple(processor.image_mean) == (0.5, 0.5, 0.5) else "the ImageNet mean/std"
    if processor.do_reduce_labels:
        text = (
            f"As mmseg's test pipeline: `preprocessor_config.json` resizes keeping the aspect ratio so that the image "
            f"fits {processor.size['longest_edge']}x{processor.size['shortest_edge']} (short side "
            f"{processor.size['shortest_edge']} unless the long side would exceed {processor.size['longest_edge']}; "
            "mmcv's rounding, OpenCV-style bilinear), with no crop and no squashing to a square (the 640x427 example "
            "photo becomes {}x{}), rescales to [0, 1] and normalises with {}; label maps are reduced "
            "(0 -> 255 ignored, k -> k-1). The model then runs over the result with a sliding window "
            f"(`segment_image`, `hf-beit segment`: {size}x{size} windows, stride {2 * size // 3})."
        ).format(*example_resized_size(processor), stats)
        if entry is not None:
            text += " The published single-scale mIoU was measured this way."
        return text
    text = (
        f"As {family.evaluation}: bicubic resize of the short side to {processor.size['shortest_edge']}, centre crop "
        f"{size}x{size} (torchvision's rounding), rescale to [0, 1] and normalise with mean/std {stats} "
        "(`preprocessor_config.json`)."
    )
    if family.source_format == "transformers":
        text += " The source repo's own `preprocessor_config.json` is not used."
    elif entry is None or entry.hub_equivalent:
        text += " The Hub copies made by transformers' script squash images to the square size bilinearly instead."
    return text


def _limitations(
    config, task: str, entry: ReleasedCheckpoint | None, family: CheckpointFamily, head_trained: bool
) -> list[str]:
    items = [] if head_trained else [_untrained_head(task)]
    if entry is not None:
        items += [
            *entry.notes,
            (
                f"Trained on {family.domain}: accuracy drops on other domains, and "
                "the datasets' label sets and biases are inherited."
            ),
        ]
        if family.licence.restriction:
            items.append(family.licence.restriction)
    if task == "segmentation":
        items.append(stock_taps_note(config.out_indices))
    items.append(
        "Fixed input resolution; other sizes work through interpolation of the position bias but change results."
    )
    if task == "mim":
        items.append(
            f"The head predicts {family.tokenizer} tokenizer codes and is not useful on its own; fine-tune instead."
        )
    if task == "embeddings":
        items.append("The encoder has no task head: use its features, or fine-tune it for a task.")
    return items


def _details(
    config, task: str, stats: ModelStats, entry: ReleasedCheckpoint | None, labels: str, family: CheckpointFamily
) -> list:
    size, grid = stats.image_size, stats.image_size // config.patch_size
    position = (
        "absolute position embeddings"
        if config.use_absolute_position_embeddings
        else "relative position bias "
        + ("shared by all layers" if config.use_shared_relative_position_bias else "in every layer")
    )
    head = {
        "mim": f"masked image modeling: LayerNorm + linear head to {config.vocab_size} visual tokens",
        "classification": "image classification: "
        + ("LayerNorm of the mean patch token" if config.use_mean_pooling else "final LayerNorm of the CLS token")
        + " + linear head",
        "segmentation": f"semantic segmentation: FPN neck + UPerNet head (taps after blocks {config.out_indices})"
        + (" + FCN auxiliary head" if config.use_auxiliary_head else ""),
        "embeddings": "none (the bare encoder: "
        + ("final LayerNorm" if not config.use_mean_pooling else "LayerNorm of the mean patch token")
        + " as the pooled output)",
    }[task]
    rows = [
        (
            "Architecture",
            f"{family.title}{'-' + entry.size if entry else ''}: Vision Transformer with {position}"
            + (" and layer scale" if config.layer_scale_init_value > 0 else ""),
        ),
        ("Task / head", head),
        ("Resolution", f"{size}x{size} ({grid}x{grid} patches of {config.patch_size}x{config.patch_size})"),
        (
            "Hidden size / layers / heads / MLP",
            (
                f"{config.hidden_size} / {config.num_hidden_layers} / "
                f"{config.num_attention_heads} / {config.intermediate_size}"
            ),
        ),
        ("Labels", labels),
        ("Parameters", f"{_number(stats.params_millions)}M ({stats.num_parameters:,})"),
        ("Compute", f"{_number(stats.gmacs)} GMACs per {size}x{size} image"),
    ]
    if entry is not None:
        hub_source = family.source_format == "transformers"
        original = f"[`{entry.hub_equivalent}`]({entry.url}) (transformers format)" if hub_source else (
            f"[`{entry.name}.pth`]({entry.url})"
        )
        rows += [
            ("Pre-training", entry.pretraining),
            ("Fine-tuning", entry.finetuning),
            ("Original checkpoint", original),
            ("License", f"`{family.licence.spdx}` (see *License*)"),
        ]
        if entry.hub_equivalent and not hub_source:
            rows.append(
                (
                    "Same weights on the Hub",
                    (
                        f"[`{entry.hub_equivalent}`](https://huggingface.co/"
                        f"{entry.hub_equivalent}) (transformers' conversion; see Preprocessing for the differences)"
                    ),
                )
            )
    return rows


def render_model_card(
    config,
    task: str,
    stats: ModelStats,
    *,
    entry: ReleasedCheckpoint | None = None,
    repo_id: str | None = None,
    original_name: str = "unknown",
    conversion_notes: list[str] | tuple[str, ...] = (),
    preprocessor: BeitImageProcessor | None = None,
    template_path: str | Path = TEMPLATE_PATH,
    family: CheckpointFamily | None = None,
    original_format: str = "unilm",
    base_model: str | None = None,
    head_trained: bool = True,
) -> ModelCard:
    """Render the model card of a converted repo (metadata from ``ModelCardData``, body from the template).

    ``family`` defaults to the entry's (BEiT without one); given without an entry (a data2vec-vision repo of
    unknown provenance) it still decides the licence. ``original_format`` says what was read: ``"unilm"`` (an
    original file) or ``"transformers"`` (a repo written by ``save_pretrained``). ``base_model``: the Hub id of the
    checkpoint this one was fine-tuned (or re-targeted) from. ``head_trained=False``: the task head is new (a
    re-targeted checkpoint); the card then says it must be fine-tuned and shows no prediction snippets.
    """
    if not Path(template_path).is_file():
        raise FileNotFoundError(
            f"Model card template {template_path} not found; run from a source checkout of hf_beit."
        )
    known_family = family is not None or entry is not None
    family = family or (entry.family if entry else BEIT)
    preprocessor = preprocessor or family.preprocessor(task, config.image_size)
    repo = repo_id or (entry.repo_name if entry else original_name)
    label_set = entry.label_set if entry else None
    labels = label_text(task, config, label_set, family)
    size = _size_name(config.hidden_size)
    if entry is None:
        what = ("a repo written by transformers" if original_format == "transformers"
                else "an original (unilm-format) checkpoint")
        summary = f"A {family.title} model converted from {what}."
        if not head_trained:
            summary += " " + _untrained_head(task)
        source = (
            f"the transformers repo `{original_name}`."
            if original_format == "transformers"
            else f"the checkpoint `{original_name}`, a BEiT model in the format of microsoft/unilm."
        )
    else:
        summary = (
            f"{entry.pretraining}."
            if task in ("mim", "embeddings")
            else f"{entry.finetuning[0].upper()}{entry.finetuning[1:]}, after {entry.pretraining[0].lower()}"
            f"{entry.pretraining[1:]}."
        )
        released = (
            f"released with the paper [{family.paper_title}]({family.paper_url}) ({family.authors}) in "
            f"[{family.code_repo}]({family.code_url})."
        )
        source = (
            f"the Hub repo `{entry.hub_equivalent}` (transformers' copy of the checkpoint {released[:-1]})."
            if family.source_format == "transformers"
            else f"the original checkpoint `{entry.name}` {released}"
        )
    return ModelCard.from_template(
        _card_data(config, task, entry, repo, family, known_family, base_model, head_trained),
        template_path=str(template_path),
        title=f"{family.title}{'-' + size if size else ''} ({repo})",
        summary=summary,
        source_sentence=source,
        details=_details(config, task, stats, entry, labels, family),
        uses=_uses(task, config.num_labels, label_set) if head_trained else (
            f"Fine-tuning for {task} (below), or image embeddings from the pre-trained encoder; not {task} as it is."
        ),
        usage=usage_blocks(task, repo, config, head_trained=head_trained),
        example_credit=EXAMPLE_CREDIT + ("" if family.photos else (
            " It is a photo, not a document: with this model it only shows that the code runs; use a scanned page "
            "for meaningful output."
        )),
        preprocessing_description=_preprocessing_text(preprocessor, stats.image_size, entry, family),
        limitations=_limitations(config, task, entry, family, head_trained),
        training_description=_training(task, entry),
        metrics=entry.metrics if entry else (),
        no_metrics_text=(
            "The authors publish no evaluation numbers for this checkpoint."
            if entry
            else "No evaluation numbers are known for this checkpoint."
        ),
        architecture=config.architectures[0],
        transformers_compatibility=(
            "loads in stock transformers with the same outputs"
            if task != "segmentation"
            else "stock transformers loads the weights but taps other blocks, see *Limitations*"
        ),
        licence_text=family.licence.text if known_family else _UNKNOWN_LICENCE,
        layer_norm_eps=config.layer_norm_eps,
        conversion_notes=list(conversion_notes),
        citation=family.citation,
    )


_UNKNOWN_LICENCE = (
    "Unknown: the converted checkpoint came without a registry entry, so its terms are those of wherever it came from "
    "(`license: other`)."
)


def _untrained_head(task: str) -> str:
    return (
        f"The {task} head of this repo is new (initialised at random, not trained): the checkpoint was re-targeted "
        f"from another task, so it does not do {task} as it is and must be fine-tuned first."
    )


def _uses(task: str, num_labels: int, label_set: str | None) -> str:
    classes = "the 150 ADE20k categories" if label_set == "ade20k" else f"{num_labels} classes"
    return {
        "mim": "Initialisation for fine-tuning on classification, segmentation or detection (the encoder is "
        "`model.beit`), or continued masked-image-modeling pre-training with a visual tokenizer.",
        "classification": "Image classification into the classes listed under *Labels* above, or as a backbone "
        "for fine-tuning.",
        "segmentation": f"Semantic segmentation of scenes into {classes}.",
        "embeddings": "Image embeddings (`pooler_output`, or the patch tokens of `last_hidden_state`), linear probing "
        "(`hf-beit probe`), or initialisation for fine-tuning.",
    }[task]


def _training(task: str, entry: ReleasedCheckpoint | None) -> str:
    if entry is None:
        return "Unknown (no registry entry was given for this checkpoint)."
    family = entry.family
    text = f"{entry.pretraining}: {family.objective}"
    text += (
        "; AdamW, batch 2048, lr 1.5e-3, 150 epochs."
        if "22k" in entry.pretraining
        else f" (see [{family.code_repo}]({family.code_url}))."
    )
    if task not in ("mim", "embeddings"):
        text += f" Fine-tuning: {entry.finetuning}, with layer-wise learning-rate decay."
    return text
