"""``transformers.pipeline`` for hf_beit models given as objects or as local repositories.

A BEiT ``config.json`` says ``model_type: "beit"``, so ``transformers.pipeline(task, model=path)`` would build
transformers' own BEiT classes and image processor. This wrapper loads hf_beit's classes (and hf_beit's
``BeitImageProcessor``) first and hands the objects to ``transformers.pipeline``.
"""

from __future__ import annotations

import os
from typing import Any

import transformers

from ._loading import TASKS, check_local_repo, load_image_processor, load_model, processor_for_model


def pipeline(task: str, model: Any, image_processor: Any = None, **kwargs: Any) -> transformers.Pipeline:
    """Build a transformers pipeline for an hf_beit model.

    Args:
        task: ``"image-classification"``, ``"image-segmentation"`` or ``"image-feature-extraction"``.
        model: an hf_beit model object, or the path of a local repository written by ``save_pretrained``.
        image_processor: defaults to the ``preprocessor_config.json`` saved with the model.
        **kwargs: passed to ``transformers.pipeline`` (``device``, ``dtype``, ``pool`` ...).
    """
    if task not in TASKS:
        raise ValueError(f"Unsupported task {task!r}; hf_beit pipelines support: {', '.join(TASKS)}.")
    if isinstance(model, (str, os.PathLike)):
        repo = check_local_repo(model)
        model = load_model(repo, task)  # refuses a repo of another task (its head would be random)
        if image_processor is None:
            image_processor = load_image_processor(repo)
    else:
        image_processor = processor_for_model(model, image_processor)
    return transformers.pipeline(task, model=model.eval(), image_processor=image_processor, **kwargs)
