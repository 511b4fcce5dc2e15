"""Load hf_beit models and image processors from local repositories (never transformers' own BEiT classes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..hub import resolve_model_dir
from ..tasks import TASKS as _ALL_TASKS
from ..tasks import WrongTaskError, check_task, get_task

TASKS = tuple(task.pipeline for task in _ALL_TASKS.values() if task.pipeline)


def _hf_beit_attr(name: str) -> Any:
    import hf_beit

    return getattr(hf_beit, name)


def model_class_for_task(task: str) -> type:
    """The hf_beit model class serving ``task`` (one of :data:`TASKS`)."""
    if task not in TASKS:
        raise ValueError(f"Unsupported task {task!r}; hf_beit pipelines support: {', '.join(TASKS)}.")
    return get_task(task).model_class


def check_local_repo(path: str | os.PathLike) -> Path:
    """The folder of the model ``path`` names (a local repository, or a Hub id resolved through the HF cache) if it
    holds a ``config.json``; a clear error otherwise."""
    repo = resolve_model_dir(path)
    if not (repo / "config.json").is_file():
        raise FileNotFoundError(
            f"{str(repo)!r} has no config.json; is it a model repository written by save_pretrained?"
        )
    return repo


def load_model(path: str | os.PathLike, task: str, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load the hf_beit model for ``task`` from a local repository, in eval mode on ``device``.

    Raises ``WrongTaskError`` for a repo of another task (e.g. a MIM repo for classification), whose head would
    otherwise be random: checked on ``config.architectures`` and on the head weights actually found.
    """
    repo = check_local_repo(path)
    model_class = model_class_for_task(task)
    check_task(_hf_beit_attr("BeitConfig").from_pretrained(str(repo)), task, source=str(repo))
    model, info = model_class.from_pretrained(str(repo), output_loading_info=True)
    head = get_task(task).head_prefixes
    missing_head = [key for key in info["missing_keys"] if key.startswith(head)]
    if missing_head:
        raise WrongTaskError(
            f"{repo} has no trained {get_task(task).description} head (missing {', '.join(missing_head[:3])}); "
            "it would classify at random. Fine-tune it first (hf-beit train ... --init-from)."
        )
    return model.to(device).eval()


def load_image_processor(path: str | os.PathLike) -> Any:
    """Load hf_beit's ``BeitImageProcessor`` from a repository's ``preprocessor_config.json`` (folder or Hub id)."""
    repo = resolve_model_dir(path)
    if not (repo / "preprocessor_config.json").is_file():
        raise FileNotFoundError(
            f"{str(repo)!r} has no preprocessor_config.json. Save one with "
            "`hf_beit.BeitImageProcessor(...).save_pretrained(repo)` (in Python, an `image_processor=` argument also "
            "works)."
        )
    return _hf_beit_attr("BeitImageProcessor").from_pretrained(str(repo))


def processor_for_model(model: torch.nn.Module, image_processor: Any = None) -> Any:
    """``image_processor`` if given, else the processor saved next to the model's weights."""
    if image_processor is not None:
        return image_processor
    source = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    if source and Path(source).is_dir():
        return load_image_processor(source)
    raise ValueError(
        "No image processor: pass `image_processor=hf_beit.BeitImageProcessor(...)`; the model object was not "
        "loaded from a local repository with a preprocessor_config.json."
    )


def label_names(config: Any) -> list[str]:
    """Class names in class-id order (``LABEL_i`` where the config has no name)."""
    id2label = {int(k): v for k, v in (getattr(config, "id2label", None) or {}).items()}
    return [str(id2label.get(i, f"LABEL_{i}")) for i in range(config.num_labels)]


def is_multi_label(config: Any) -> bool:
    """True for models trained with a sigmoid per class (``problem_type == "multi_label_classification"``)."""
    return getattr(config, "problem_type", None) == "multi_label_classification"
