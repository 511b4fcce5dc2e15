"""Conversion flow for transformers-format repos (data2vec-vision, BEiT/DiT Hub repos) into hub-ready BEiT repos."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..stock_taps import stock_taps_phrase
from .convert import ConversionResult
from .errors import ConversionError
from .model_card import render_model_card
from .model_stats import compute_model_stats
from .push import push_to_hub as upload_folder
from .registry import ReleasedCheckpoint, get_released_checkpoint
from .transformers_repo import (
    TransformersRepo,
    beit_config,
    read_transformers_repo,
    rename_weights,
    repo_notes,
    source_labels,
)
from .verify import load_converted
from .writer import check_output_dir, write_repo


def _validate(repo: TransformersRepo, config, entry: ReleasedCheckpoint) -> None:
    expected = {**entry.architecture, "image_size": entry.image_size}
    found = {name: getattr(config, name) for name in expected}
    wrong = {name: (found[name], value) for name, value in expected.items() if found[name] != value}
    if repo.task != entry.task:
        wrong["task"] = (repo.task, entry.task)
    if wrong:
        details = ", ".join(f"{k}: repo {a} vs {entry.name} {b}" for k, (a, b) in wrong.items())
        raise ConversionError(f"The repo does not match the registry entry --model-name {entry.name} ({details}).")


@torch.no_grad()
def compare_with_transformers(repo: TransformersRepo, model, seed: int = 0) -> float | None:
    """Max |difference| between ``model`` and transformers' own class on the source repo (random inputs).

    Compares the logits (classification, MIM with a random mask) or ``last_hidden_state`` and ``pooler_output``
    (encoders). Segmentation is not compared: transformers taps other blocks (see README "Feature taps").
    """
    import transformers

    if repo.task == "segmentation":
        return None
    reference = getattr(transformers, repo.architecture).from_pretrained(str(repo.path)).eval()
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    size = config.image_size_2d
    pixel_values = torch.randn(2, config.num_channels, *size, generator=generator)
    kwargs = {}
    if repo.task == "mim":
        patches = config.window_size[0] * config.window_size[1]
        kwargs["bool_masked_pos"] = torch.rand(2, patches, generator=generator) < 0.4
    ours, theirs = model(pixel_values=pixel_values, **kwargs), reference(pixel_values=pixel_values, **kwargs)
    fields = ("logits",) if hasattr(theirs, "logits") else ("last_hidden_state", "pooler_output")
    return max(
        (getattr(ours, name) - getattr(theirs, name)).abs().max().item()
        for name in fields
        if getattr(theirs, name, None) is not None
    )


def convert_transformers_repo(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    model_name: str | None = None,
    overwrite: bool = False,
    verify: bool = True,
    repo_id: str | None = None,
    push_to_hub: str | None = None,
    hub_endpoint: str | None = None,
    hub_token: str | None = None,
    log: Callable[[str], None] = print,
) -> ConversionResult:
    """Convert a local transformers repo (data2vec-vision or BEiT) into a BEiT repo with an hf_beit card.

    With ``model_name`` (e.g. ``facebook/data2vec-vision-base-ft1k``) the registry fixes labels, preprocessing and
    card facts and is checked against the repo; without it the repo's labels and processor are kept. ``verify``
    loads the result with hf_beit and compares it with transformers' class on the source repo.
    """
    check_output_dir(output, overwrite)
    entry = get_released_checkpoint(model_name) if model_name else None
    repo = read_transformers_repo(source)
    family = entry.family if entry else repo.family
    config = beit_config(repo, source_labels(repo, entry.label_set if entry else None))
    if entry is not None:
        _validate(repo, config, entry)
    weights = rename_weights(repo.state_dict, repo.family.weight_prefix)
    notes = repo_notes(repo.family, entry.hub_equivalent if entry and entry.hub_equivalent else Path(source).name)
    if repo.task == "segmentation":
        notes.append(
            f"`out_indices` {list(config.out_indices)} read as the 0-based blocks hf_beit taps ({stock_taps_phrase()})."
        )
    if entry is not None and entry.label_set:
        notes.append(f"`id2label`: {entry.label_set} ({config.num_labels} classes).")
    preprocessor = family.preprocessor(repo.task, config.image_size_2d[0])
    if entry is None and repo.processor is not None:
        preprocessor = type(preprocessor).from_dict(repo.processor)
        notes.append("Kept the source repo's `preprocessor_config.json` settings.")
    card = render_model_card(
        config, repo.task, compute_model_stats(config, repo.task), entry=entry, repo_id=repo_id or push_to_hub,
        original_name=Path(source).name, conversion_notes=notes, preprocessor=preprocessor, family=family,
        original_format="transformers", base_model=entry.base_model(repo_id or push_to_hub) if entry else None,
    )
    result = ConversionResult(Path(output), repo.task, config, None, notes=notes)

    def check(folder: Path) -> None:
        if not verify:
            return
        model, _ = load_converted(folder, repo.task)
        result.reference_max_abs_diff = compare_with_transformers(repo, model)
        if result.reference_max_abs_diff is not None:
            log(f"Max |output difference| vs transformers' {repo.architecture}: {result.reference_max_abs_diff:.3e}")

    result.output = write_repo(
        output, config=config, state_dict=weights, preprocessor_config=preprocessor.to_dict(), readme=str(card),
        overwrite=overwrite, check=check,
    )
    if push_to_hub:
        result.commit_url = upload_folder(result.output, push_to_hub, endpoint=hub_endpoint, token=hub_token)
        log(f"Pushed to {result.commit_url}")
    return result
