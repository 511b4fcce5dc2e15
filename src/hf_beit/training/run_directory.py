"""The output directory of a training run: refused when it holds another run (unless ``--resume`` or
``--overwrite``), cleared of that run's outputs on ``--overwrite`` so logs, curves and checkpoints are the new run's."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

FINAL_MODEL_DIR = "model"
TRAINING_LOG = "training_log.jsonl"
ARGUMENTS_FILE = "arguments.json"
LOSS_PICTURE = "loss.png"
METRICS_PICTURE = "metrics.png"
#: What a run writes into its output directory (``checkpoint-N`` folders besides); ``runs`` = TensorBoard's logs.
RUN_OUTPUTS = frozenset({FINAL_MODEL_DIR, TRAINING_LOG, ARGUMENTS_FILE, LOSS_PICTURE, METRICS_PICTURE, "runs"})
_CHECKPOINT = re.compile(r"checkpoint-\d+")


def _is_run_output(name: str) -> bool:
    return name in RUN_OUTPUTS or bool(_CHECKPOINT.fullmatch(name))


def prepare_run_directory(output_dir: str | os.PathLike, overwrite: bool = False, resume: object = None) -> None:
    """Check (and on ``overwrite`` clear) ``output_dir`` before a run writes anything into it.

    Raises ``FileExistsError`` for a non-empty directory without ``resume``/``overwrite`` and ``NotADirectoryError``
    for a file. ``overwrite`` removes only what a run writes (:data:`RUN_OUTPUTS`, ``checkpoint-N``); other files
    stay.
    """
    path = Path(output_dir)
    if not path.exists():
        return
    if not path.is_dir():
        raise NotADirectoryError(f"--output-dir {path} is a file, not a directory.")
    entries = sorted(entry.name for entry in path.iterdir() if not entry.name.startswith("."))
    if not entries or resume:
        return
    if not overwrite:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise FileExistsError(
            f"--output-dir {path} is not empty ({shown}). Pass --resume to continue the run it holds, or "
            "--overwrite to start a new run there (its previous run outputs are removed), or choose another directory."
        )
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun the first process clears (before any process can write: they meet in the Trainer)
    for name in entries:
        if _is_run_output(name):
            target = path / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
