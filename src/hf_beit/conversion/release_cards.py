"""Model cards for the registry's released checkpoints, rendered without downloading any weights."""

from __future__ import annotations

from huggingface_hub import ModelCard

from ..data.labels import id2label_for
from .cls_head import kept_head_note
from .config_inference import CheckpointFacts, build_config
from .convert import RENAMING_NOTES
from .model_card import render_model_card
from .model_stats import compute_model_stats
from .registry import ReleasedCheckpoint
from .transformers_repo import repo_notes


def release_facts(entry: ReleasedCheckpoint) -> CheckpointFacts:
    """The architecture facts the converter reads from the released file (or Hub repo) of ``entry``."""
    arch, family = entry.architecture, entry.family
    mim, seg = entry.task == "mim", entry.task == "segmentation"
    pretrained = entry.task in ("mim", "embeddings")
    relative = not family.absolute_positions
    shared = relative and (pretrained or family.shared_relative_when_finetuned)
    return CheckpointFacts(
        task=entry.task,
        hidden_size=arch["hidden_size"],
        num_hidden_layers=arch["num_hidden_layers"],
        intermediate_size=arch["intermediate_size"],
        num_attention_heads=arch["num_attention_heads"],
        patch_size=family.patch_size,
        num_channels=3,
        image_size=entry.image_size,
        use_absolute_position_embeddings=family.absolute_positions,
        use_shared_relative_position_bias=shared,
        use_relative_position_bias=relative and not shared,
        use_layer_scale=family.layer_scale,
        use_mask_token=mim,
        use_mean_pooling=family.pretrained_mean_pooling or not pretrained,
        num_labels=entry.num_labels,
        vocab_size=family.vocab_size if mim else None,
        auxiliary_channels=family.segmentation_auxiliary_channels if seg else None,
        auxiliary_num_convs=int(seg),
        num_pool_scales=family.segmentation_pool_scales if seg else 0,
    )


def release_notes(entry: ReleasedCheckpoint, id2label: dict | None) -> list[str]:
    """The *Conversion* notes the converter writes for the released file of ``entry``."""
    if entry.family.source_format == "transformers":
        notes = repo_notes(entry.family, entry.hub_equivalent or entry.name)
    else:
        notes = [f"Read `{entry.name}.pth` (weights under `{entry.container}`).", *RENAMING_NOTES]
    if entry.cls_pretraining_early_layers is not None:
        notes.append(kept_head_note(entry.cls_pretraining_early_layers))
    if id2label:
        notes.append(f"`id2label`: {entry.label_set} ({len(id2label)} classes).")
    return notes


def render_release_card(entry: ReleasedCheckpoint, repo_id: str | None = None) -> ModelCard:
    """The card ``convert_checkpoint(..., model_name=entry.name)`` writes for the released file."""
    facts = release_facts(entry)
    id2label = id2label_for(entry.label_set) if entry.label_set else None
    config = build_config(facts, id2label=id2label)
    return render_model_card(
        config,
        entry.task,
        compute_model_stats(config, entry.task),
        entry=entry,
        repo_id=repo_id,
        original_name=entry.name,
        conversion_notes=release_notes(entry, id2label),
        preprocessor=entry.family.preprocessor(entry.task, config.image_size),
        base_model=entry.base_model(repo_id),
    )
