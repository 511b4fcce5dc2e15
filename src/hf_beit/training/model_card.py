"""The model card of a fine-tuned model: what it was trained from and on, the recipe, the results, and how to use
it (the snippets of :mod:`hf_beit.conversion.card_usage`, which run as written)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..conversion.card_labels import listed_labels
from ..conversion.card_usage import usage_blocks, usage_markdown
from ..conversion.example_image import EXAMPLE_CREDIT, write_example_image
from ..hub import is_hub_id
from ..stock_taps import card_library, stock_taps_note
from ..tasks import get_task

_RECIPE_KEYS = ("epochs", "max_steps", "batch_size", "learning_rate", "layer_decay", "weight_decay", "warmup",
                "drop_path", "label_smoothing", "mixup", "cutmix", "image_size", "seed")  # fmt: skip


def finetuned_card(
    repo_id: str, task: str, config: Any, arguments: Mapping[str, Any], metrics: Mapping[str, float]
) -> ModelCard:
    """A card for the fine-tuned model of ``arguments`` (a ``FinetuneArguments`` as a dict) with its ``metrics``."""
    task_info = get_task(task)
    if not config.architectures:  # set by save_pretrained, which runs after the card is written
        config = copy.deepcopy(config)
        config.architectures = [task_info.architecture]
    base = arguments.get("init_from")
    dataset = str(arguments.get("dataset") or "")
    data = ModelCardData(
        base_model=base if base and is_hub_id(base) else None,
        datasets=[dataset] if is_hub_id(dataset) else None,
        library_name=card_library(task),
        pipeline_tag=task_info.pipeline,
        tags=["vision", "beit", "hf_beit", task_info.pipeline],
        model_name=repo_id,
        eval_results=_eval_results(task_info, dataset or "custom", metrics),
        license="other",
    )
    body = "\n\n".join([
        f"# {repo_id}",
        _summary(task_info.description, base, dataset, config),
        "## How to use\n\n" + usage_markdown(usage_blocks(task, repo_id, config)) + "\n\n" + EXAMPLE_CREDIT,
        "## Training\n\n" + _recipe(arguments),
        "## Results\n\n" + _results(metrics),
        "## Limitations\n\n" + _limitations(task, base, config),
    ])  # fmt: skip
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def _summary(description: str, base: str | None, dataset: str, config: Any) -> str:
    origin = f"fine-tuned from [`{base}`](https://huggingface.co/{base})" if base and is_hub_id(base) else (
        f"fine-tuned from `{base}`" if base else "trained from scratch (random initialisation)"
    )
    return (
        f"A BEiT {description} model ({config.hidden_size} wide, {config.num_hidden_layers} blocks, "
        f"{config.image_size}x{config.image_size} inputs), {origin} on `{dataset or 'a custom dataset'}` with "
        f"hf_beit (`hf-beit train`).\n\nLabels: {listed_labels(config)}."
    )


def _recipe(arguments: Mapping[str, Any]) -> str:
    rows = [f"| {key} | {arguments[key]} |" for key in _RECIPE_KEYS if arguments.get(key) not in (None, -1)]
    return "`hf-beit train` (transformers `Trainer`, AdamW, cosine schedule, unilm's layer-wise lr decay):\n\n" + (
        "| setting | value |\n|---|---|\n" + "\n".join(rows)
    )


def _results(metrics: Mapping[str, float]) -> str:
    rows = [f"| {key} | {value:.4f} |" for key, value in metrics.items()
            if isinstance(value, float) and key.startswith(("eval_", "test_")) and "runtime" not in key
            and "per_second" not in key]  # fmt: skip
    if not rows:
        return "No evaluation was run."
    header = "Validation (`eval_`) selected the checkpoint; `test_` is a held-out split."
    return f"{header}\n\n| metric | value |\n|---|---|\n" + "\n".join(rows)


def _eval_results(task, dataset: str, metrics: Mapping[str, float]) -> list[EvalResult] | None:
    results = [
        EvalResult(task_type=task.pipeline, dataset_type=dataset, dataset_name=dataset, metric_type=key,
                   metric_value=round(value, 4), dataset_split="test" if key.startswith("test_") else "validation")
        for key, value in metrics.items()
        if isinstance(value, float) and key.split("_", 1)[-1] in ("accuracy", "top5_accuracy", "mAP", "mean_iou")
    ]  # fmt: skip
    return results or None


def _limitations(task: str, base: str | None, config: Any) -> str:
    items = [
        "Evaluated only on the split named above; check it on your own data before relying on it.",
        "The licence is that of the training data and of the base model (see their cards); it is not stated here.",
    ]
    if task == "segmentation":
        items.append(stock_taps_note(config.out_indices))
    if base is None:
        items.append("Trained from scratch on this data only: expect it to generalise less than a pre-trained model.")
    return "\n".join(f"- {item}" for item in items)


def write_card_and_example(model_dir: str | Path, card: ModelCard) -> None:
    """Write ``README.md`` and the example photo its command-line snippets use into ``model_dir``."""
    (Path(model_dir) / "README.md").write_text(str(card), encoding="utf-8")
    write_example_image(model_dir)
