"""End-to-end conversion: original checkpoint -> checked, hub-ready repo (-> optional push)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..data.labels import id2label_for
from ..retargeting import RetargetingError, retarget_config, retarget_state_dict
from ..tasks import get_task
from .checkpoint import load_original_checkpoint
from .cls_head import plan_cls_head, split_cls_pretraining_head
from .config_inference import CheckpointFacts, build_config, inspect_state_dict
from .errors import ConversionError
from .families import BEIT
from .key_mapping import convert_state_dict, strip_backbone_prefix
from .model_card import render_model_card
from .model_stats import compute_model_stats
from .push import push_to_hub as upload_folder
from .registry import ReleasedCheckpoint, get_released_checkpoint
from .release_entry import in_namespace
from .verify import compare_with_timm, load_converted
from .writer import check_output_dir, write_repo

_LABEL_SETS_BY_SIZE = {1000: "imagenet-1k", 21841: "imagenet-22k", 150: "ade20k"}
RENAMING_NOTES = [
    (
        "Renamed to transformers' classic BEiT layout: `qkv` split into query/key/value, `q_bias`/`v_bias` -> "
        "query/value bias (the key has none), `gamma_1/2` -> `lambda_1/2`, `relative_position_index` dropped."
    ),
    "`layer_norm_eps` set to 1e-6 as in the original models.",
]


@dataclass
class ConversionResult:
    """What was written and how it was checked."""

    output: Path
    task: str
    config: object
    facts: CheckpointFacts | None  # None for transformers-format sources
    new_head_keys: list[str] = field(default_factory=list)
    timm_max_abs_diff: float | None = None
    reference_max_abs_diff: float | None = None  # transformers-format sources: vs transformers' own class
    commit_url: str | None = None
    notes: list[str] = field(default_factory=list)


def _validate_entry(facts: CheckpointFacts, entry: ReleasedCheckpoint) -> None:
    expected = {**entry.architecture, "image_size": entry.image_size, "task": entry.task}
    found = {name: getattr(facts, name) for name in expected}
    wrong = {k: (found[k], v) for k, v in expected.items() if found[k] is not None and found[k] != v}
    if wrong:
        details = ", ".join(f"{k}: checkpoint {a} vs {entry.name} {b}" for k, (a, b) in wrong.items())
        raise ConversionError(
            f"The checkpoint does not match the registry entry --model-name {entry.name} ({details})."
        )


def _labels(task: str, num_labels: int | None, entry: ReleasedCheckpoint | None) -> tuple[dict | None, str | None]:
    if task in ("mim", "embeddings"):
        return None, None
    label_set = entry.label_set if entry and entry.task == task else _LABEL_SETS_BY_SIZE.get(num_labels or -1)
    if label_set is None:
        return None, None
    labels = id2label_for(label_set)
    return (labels, label_set) if num_labels in (None, len(labels)) else (None, None)


def _check_complete(retargeted, task, relabelled: bool) -> None:
    """A checkpoint converted for its own task must fill the whole model and nothing else: a missing, misshapen or
    unknown weight would otherwise be initialised at random or dropped (only a head sized for new labels is new)."""
    fresh_head = task.label_prefixes if relabelled else ()
    missing = [key for key in retargeted.new_keys if not (fresh_head and key.startswith(fresh_head))]
    unknown = [key for key in retargeted.dropped_keys
               if key not in missing and not (fresh_head and key.startswith(fresh_head))]
    problems = [f"{what}: {_some(keys)}" for what, keys in (("missing or misshapen", missing), ("unknown", unknown))
                if keys]
    if problems:
        raise ConversionError(
            f"The checkpoint does not match the model it describes ({'; '.join(problems)}; names as in "
            "transformers' BEiT): it may be damaged, cut short or from another architecture."
        )


def _some(keys: list[str], shown: int = 6) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _base_model(entry: ReleasedCheckpoint | None, same_task: bool, repo_id: str | None) -> str | None:
    """The card's ``base_model``: the entry's parent, or the entry itself when it was re-targeted to another task."""
    if entry is None:
        return None
    return entry.base_model(repo_id) if same_task else in_namespace(entry.repo_name, repo_id)


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    model_name: str | None = None,
    task: str | None = None,
    image_size: int | None = None,
    num_labels: int | None = None,
    num_attention_heads: int | None = None,
    cls_pretraining_head: str = "keep",
    cls_head_early_layers: int | None = None,
    use_ema: bool = False,
    overwrite: bool = False,
    verify: bool = True,
    repo_id: str | None = None,
    push_to_hub: str | None = None,
    hub_endpoint: str | None = None,
    hub_token: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> ConversionResult:
    """Convert an original unilm/mmseg BEiT checkpoint into ``output`` (config, safetensors, processor, card).

    Without ``model_name`` everything is read from the weights; with it the registry entry fixes labels,
    preprocessing and card facts and is checked against the weights. ``task``/``image_size``/``num_labels``
    re-target the checkpoint (e.g. MIM -> classification, 224 -> 384) with :mod:`hf_beit.retargeting`, the code
    ``hf-beit train --init-from`` uses. ``num_attention_heads`` is required for checkpoints without a
    relative-position table (the head count cannot be read from them) unless the registry entry gives it.
    BEiT v2 pre-training checkpoints also hold a CLS-pretraining head: ``cls_pretraining_head="keep"`` writes it to
    ``cls_pretraining_head.safetensors`` (``cls_head_early_layers``, or the registry entry, says which block feeds
    it), ``"drop"`` leaves it out. A directory written by transformers' ``save_pretrained`` (data2vec-vision, or a
    BEiT repo) is converted by :func:`.transformers_repo.convert_transformers_repo`.
    """
    if Path(checkpoint).is_dir():
        from .convert_repo import convert_transformers_repo

        unsupported = {
            "--task": task, "--image-size": image_size, "--num-labels": num_labels, "--num-heads": num_attention_heads,
            "--use-ema": use_ema, "--cls-head-early-layers": cls_head_early_layers,
        }
        given = [option for option, value in unsupported.items() if value]
        if given:
            raise ConversionError(
                f"{', '.join(given)} apply to original checkpoints only; {checkpoint} is a transformers repo. "
                "Convert it first, then re-target with hf-beit train --init-from."
            )
        return convert_transformers_repo(
            checkpoint, output, model_name=model_name, overwrite=overwrite, verify=verify, repo_id=repo_id,
            push_to_hub=push_to_hub, hub_endpoint=hub_endpoint, hub_token=hub_token, log=log,
        )
    bar = tqdm(total=5, desc="Converting", disable=not progress, unit="step")
    try:
        check_output_dir(output, overwrite)
        entry = get_released_checkpoint(model_name) if model_name else None
        original = load_original_checkpoint(checkpoint, use_ema=use_ema)
        state_dict, cls_head = split_cls_pretraining_head(strip_backbone_prefix(original.state_dict))
        facts = inspect_state_dict(state_dict)
        if entry is not None:
            _validate_entry(facts, entry)
        task = task or facts.task
        if task == "embeddings" and facts.task == "embeddings":
            raise ConversionError("The checkpoint has no head; pass --task classification or --task segmentation.")
        if num_labels is None and entry is not None and entry.task == task:
            num_labels = entry.num_labels
        if num_attention_heads is None and entry is not None:
            num_attention_heads = entry.architecture["num_attention_heads"]
        if cls_head_early_layers is None and entry is not None:
            cls_head_early_layers = entry.cls_pretraining_early_layers
        kept_head, head_note = plan_cls_head(
            cls_head, task, facts.num_hidden_layers, cls_pretraining_head, cls_head_early_layers
        )
        bar.update()

        source_labels, _ = _labels(facts.task, facts.num_labels, entry)
        source = build_config(facts, num_attention_heads=num_attention_heads, id2label=source_labels)
        same_head = task == facts.task and num_labels in (None, facts.num_labels)
        id2label, label_set = _labels(task, num_labels if not same_head else facts.num_labels, entry)
        try:
            config = retarget_config(source, task, image_size=image_size, num_labels=num_labels, id2label=id2label)
            retargeted = retarget_state_dict(convert_state_dict(state_dict, facts.task), source, config)
        except RetargetingError as error:
            raise ConversionError(str(error)) from error
        if task == facts.task:
            _check_complete(retargeted, get_task(task), relabelled=not same_head)
        notes = [
            f"Read `{Path(checkpoint).name}` (weights under `{original.container}`).",
            *retargeted.notes,
            *retargeted.warnings,
            *RENAMING_NOTES,
            *([head_note] if head_note else []),
        ]
        if facts.num_attention_heads is None:
            notes.append(f"No relative-position table: {config.num_attention_heads} attention heads as given.")
        if label_set:
            notes.append(f"`id2label`: {label_set} ({len(id2label)} classes).")
        bar.update()

        stats = compute_model_stats(config, task)
        # what the weights cannot tell comes from the registry's family; unknown checkpoints are BEiT v1 style
        preprocessor = (entry.family if entry else BEIT).preprocessor(task, config.image_size)
        # the card's snippets load this id: the Hub repo when named, a released checkpoint's own, else the folder
        card_repo = repo_id or push_to_hub or (None if entry else Path(output).name)
        same_entry = entry is not None and entry.task == task
        card = render_model_card(
            config,
            task,
            stats,
            entry=entry if same_entry else None,
            repo_id=card_repo,
            original_name=Path(checkpoint).stem,
            conversion_notes=notes,
            preprocessor=preprocessor,
            base_model=_base_model(entry, same_entry, card_repo),
            head_trained=not any(key.startswith(get_task(task).head_prefixes) for key in retargeted.new_keys),
        )
        bar.update()

        result = ConversionResult(Path(output), task, config, facts, notes=notes)
        comparable = task == "classification" and not retargeted.new_keys and source.image_size == config.image_size

        def check(folder: Path) -> None:
            if not verify:
                return
            model, missing = load_converted(folder, task, retargeted.new_keys)
            result.new_head_keys = missing
            log(
                f"Loaded {folder.name} with {type(model).__module__.split('.')[0]}.{type(model).__name__}: "
                f"no unexpected weights, {len(missing)} newly initialised."
            )
            if kept_head is not None:
                kept_head.check(folder, config)
            if comparable:
                result.timm_max_abs_diff = compare_with_timm(original.state_dict, model)
                if result.timm_max_abs_diff is not None:
                    log(f"Max |logit difference| vs timm on the original weights: {result.timm_max_abs_diff:.3e}")

        result.output = write_repo(
            output,
            config=config,
            state_dict=retargeted.state_dict,
            preprocessor_config=preprocessor.to_dict(),
            readme=str(card),
            overwrite=overwrite,
            check=check,
            write_extra=kept_head.write if kept_head is not None else None,
        )
        bar.update()
        if push_to_hub:
            result.commit_url = upload_folder(result.output, push_to_hub, endpoint=hub_endpoint, token=hub_token)
            log(f"Pushed to {result.commit_url}")
        bar.update()
    finally:
        bar.close()
    return result
