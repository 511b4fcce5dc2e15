"""The model card of a fine-tuned model: what it was trained from and on, the recipe, the results, and how to use
it from Python, the pipeline, the command line and the HTTP endpoint (snippets that run as written)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..hub import is_hub_id
from ..tasks import get_task

EXAMPLE_IMAGE = "example.png"
_EMBEDDINGS_IMPORT = "from hf_beit.inference import extract_embeddings\n"
_RECIPE_KEYS = ("epochs", "max_steps", "batch_size", "learning_rate", "layer_decay", "weight_decay", "warmup",
                "drop_path", "label_smoothing", "mixup", "cutmix", "image_size", "seed")  # fmt: skip


def finetuned_card(
    repo_id: str, task: str, config: Any, arguments: Mapping[str, Any], metrics: Mapping[str, float]
) -> ModelCard:
    """A card for the fine-tuned model of ``arguments`` (a ``FinetuneArguments`` as a dict) with its ``metrics``."""
    task_info = get_task(task)
    base = arguments.get("init_from")
    dataset = str(arguments.get("dataset") or "")
    labels = [config.id2label[i] for i in range(config.num_labels)]
    data = ModelCardData(
        base_model=base if base and is_hub_id(base) else None,
        datasets=[dataset] if is_hub_id(dataset) else None,
        library_name="transformers" if task == "classification" else "hf_beit",
        pipeline_tag=task_info.pipeline,
        tags=["vision", "beit", "hf_beit", task_info.pipeline],
        model_name=repo_id,
        eval_results=_eval_results(task_info, dataset or "custom", metrics),
        license="other",
    )
    body = "\n\n".join([
        f"# {repo_id}",
        _summary(task_info.description, base, dataset, labels, config),
        "## How to use\n\n" + _usage(repo_id, task_info.architecture, task),
        "## Training\n\n" + _recipe(arguments),
        "## Results\n\n" + _results(metrics),
        "## Limitations\n\n" + _limitations(task, base),
    ])  # fmt: skip
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def _summary(description: str, base: str | None, dataset: str, labels: list[str], config: Any) -> str:
    origin = f"fine-tuned from [`{base}`](https://huggingface.co/{base})" if base and is_hub_id(base) else (
        f"fine-tuned from `{base}`" if base else "trained from scratch (random initialisation)"
    )
    shown = ", ".join(labels[:20]) + (f", ... ({len(labels)} in all)" if len(labels) > 20 else "")
    return (
        f"A BEiT {description} model ({config.hidden_size} wide, {config.num_hidden_layers} blocks, "
        f"{config.image_size}x{config.image_size} inputs), {origin} on `{dataset or 'a custom dataset'}` with "
        f"hf_beit (`hf-beit train`).\n\nLabels: {shown}."
    )


def _example_lines(repo_id: str, extra_import: str = "") -> str:
    """Imports and the line that opens the example image shipped with the model (Hub repo or local folder)."""
    if is_hub_id(repo_id):
        return ("from huggingface_hub import hf_hub_download\nfrom PIL import Image\n\nimport hf_beit\n"
                + extra_import + "\n"
                f'image = Image.open(hf_hub_download("{repo_id}", "{EXAMPLE_IMAGE}"))  # shipped with the model')
    return ("from PIL import Image\n\nimport hf_beit\n" + extra_import + "\n"
            f'image = Image.open("{Path(repo_id) / EXAMPLE_IMAGE}")  # shipped with the model')


def _usage(repo_id: str, architecture: str, task: str) -> str:
    pipeline_task = "image-classification" if task == "classification" else "image-segmentation"
    name, shown = ("classify", "classify(image, top_k=3)") if task == "classification" else (
        "segment", '[s["label"] for s in segment(image)]')
    python = (f"{_example_lines(repo_id)}\n{name} = hf_beit.pipeline(\"{pipeline_task}\", model=\"{repo_id}\")\n"
              f"print({shown})")
    embeddings = (
        _example_lines(repo_id, _EMBEDDINGS_IMPORT) + "\n"
        f'model = hf_beit.{architecture}.from_pretrained("{repo_id}")\n'
        f'processor = hf_beit.BeitImageProcessor.from_pretrained("{repo_id}")\n'
        "print(extract_embeddings(model, processor, [image]).shape)  # (1, hidden_size): mean-pooled"
    )
    if task == "classification":
        cli = f"hf-beit predict {repo_id} photo.jpg --top-k 3   # JSON per image; --format csv"
    else:
        cli = f"hf-beit segment {repo_id} photo.jpg --output masks/   # class-id masks and overlays"
    parts = [f"Pipeline:\n\n```python\n{python}\n```", f"Embeddings:\n\n```python\n{embeddings}\n```",
             f"Command line:\n\n```bash\n{cli}\n```"]
    if task == "classification":
        endpoint = (
            f"hf-beit serve {repo_id} --port 8000 &\n"
            "curl -s localhost:8000/score -H 'Content-Type: application/json' \\\n"
            '  -d "{\\"input_data\\": {\\"columns\\": [\\"image\\"], \\"data\\": [\\"$(base64 -w0 photo.jpg)\\"]}}"\n'
            '# -> [{"probs": [...], "labels": [...]}]: every class in class-id order (--top-k K: the best K)'
        )
        parts.append(f"HTTP endpoint (Azure-ML-style JSON):\n\n```bash\n{endpoint}\n```")
    return "\n\n".join(parts)


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
    return (
        "Validation (`eval_`) selected the checkpoint; `test_` is a held-out split.\n\n| metric | value |\n|---|---|\n"
        + "\n".join(rows)
    )


def _eval_results(task, dataset: str, metrics: Mapping[str, float]) -> list[EvalResult] | None:
    results = [
        EvalResult(task_type=task.pipeline, dataset_type=dataset, dataset_name=dataset, metric_type=key,
                   metric_value=round(value, 4), dataset_split="test" if key.startswith("test_") else "validation")
        for key, value in metrics.items()
        if isinstance(value, float) and key.split("_", 1)[-1] in ("accuracy", "top5_accuracy", "mAP", "mean_iou")
    ]  # fmt: skip
    return results or None


def _limitations(task: str, base: str | None) -> str:
    items = [
        "Evaluated only on the split named above; check it on your own data before relying on it.",
        "The licence is that of the training data and of the base model (see their cards); it is not stated here.",
    ]
    if task == "segmentation":
        items.append(
            "Load it with hf_beit: stock `transformers` refuses this repo's config.json on purpose (its segmentation "
            "model would take the UPerNet features two blocks earlier and give other masks; README \"Feature taps\")."
        )
    if base is None:
        items.append("Trained from scratch on this data only: expect it to generalise less than a pre-trained model.")
    return "\n".join(f"- {item}" for item in items)


def write_card_and_example(model_dir: str | Path, card: ModelCard, example_image: Any) -> None:
    """Write ``README.md`` and the example image the usage snippet opens into ``model_dir``."""
    model_dir = Path(model_dir)
    (model_dir / "README.md").write_text(str(card), encoding="utf-8")
    example_image.convert("RGB").save(model_dir / EXAMPLE_IMAGE)
