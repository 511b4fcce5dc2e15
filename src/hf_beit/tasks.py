"""The tasks hf_beit serves: one table of task names, model classes, pipeline names and head weights.

Every part of the package that maps a task to a class (converter, training, inference, registration, export)
reads this table; adding a head is one entry here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Task:
    """A task: its name, the hf_beit class serving it, its transformers pipeline and its head weights."""

    name: str
    architecture: str  # class name in hf_beit (the same name exists in transformers)
    pipeline: str | None  # transformers pipeline task, if any
    head_prefixes: tuple[str, ...]  # classic weight names of the task head (fresh when a checkpoint is re-targeted)
    label_prefixes: tuple[str, ...]  # the part of the head sized by the label set (fresh when the labels change)
    description: str

    @property
    def model_class(self) -> type:
        import hf_beit

        return getattr(hf_beit, self.architecture)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("mim", "BeitForMaskedImageModeling", None, ("lm_head.", "layernorm."), (), "masked image modeling"),
        Task(
            "classification",
            "BeitForImageClassification",
            "image-classification",
            ("classifier.", "beit.pooler."),
            ("classifier.",),
            "image classification",
        ),
        Task(
            "segmentation",
            "BeitForSemanticSegmentation",
            "image-segmentation",
            ("fpn1.", "fpn2.", "decode_head.", "auxiliary_head."),
            ("decode_head.classifier.", "auxiliary_head.classifier."),
            "semantic segmentation (UPerNet)",
        ),
        Task("embeddings", "BeitModel", "image-feature-extraction", (), (), "image embeddings (the bare encoder)"),
        Task("backbone", "BeitBackbone", None, ("fpn1.", "fpn2."), (), "multi-scale features (BeitBackbone)"),
    )
}
# Task names used by Hub pipelines and by older hf_beit releases, mapped to ours.
_ALIASES = {task.pipeline: task.name for task in TASKS.values() if task.pipeline}


def get_task(name: str) -> Task:
    """The task called ``name`` (ours, e.g. ``"classification"``, or a pipeline name like
    ``"image-classification"``)."""
    task = TASKS.get(_ALIASES.get(name, name))
    if task is None:
        choices = ", ".join(sorted(TASKS) + sorted(alias for alias in _ALIASES if alias not in TASKS))
        raise ValueError(f"Unknown task {name!r}; hf_beit knows: {choices}.")
    return task


def task_of_architectures(architectures: Iterable[str] | None) -> Task | None:
    """The task whose class appears in ``config.architectures`` (None if none does)."""
    by_architecture = {task.architecture: task for task in TASKS.values()}
    return next((by_architecture[name] for name in architectures or () if name in by_architecture), None)


def task_of_config(config: Any) -> Task | None:
    """The task a saved model was built for, read from its ``config.architectures``."""
    return task_of_architectures(getattr(config, "architectures", None))


def task_of_state_dict(keys: Iterable[str]) -> Task:
    """The task whose head weights (classic names) appear in a state dict; the bare encoder if none."""
    keys = list(keys)
    for task in TASKS.values():
        if task.head_prefixes and any(key.startswith(task.head_prefixes[0]) for key in keys):
            return task
    return TASKS["embeddings"]


class WrongTaskError(ValueError):
    """A saved model was loaded for a task it was not trained for (its head would be random)."""


def check_task(config: Any, task: str | Task, source: str = "The model") -> None:
    """Raise :class:`WrongTaskError` if ``config.architectures`` names another task-specific head than ``task``.

    The bare encoder (``embeddings``, ``backbone``) can come from any repo; a config without ``architectures`` cannot
    be checked and passes.
    """
    wanted = task if isinstance(task, Task) else get_task(task)
    saved = task_of_config(config)
    if wanted.name in ("embeddings", "backbone") or saved is None or saved.name == wanted.name:
        return
    hint = (
        f"fine-tune it first (hf-beit train {wanted.name} --init-from ...)"
        if wanted.name in ("classification", "segmentation")
        else f"load a {wanted.architecture} repo"
    )
    raise WrongTaskError(
        f"{source} is a {saved.description} model ({saved.architecture}), not a {wanted.description} model; {hint}."
    )
