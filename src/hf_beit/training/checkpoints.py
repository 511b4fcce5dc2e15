"""Finding resumable Trainer checkpoints and writing the final model directory atomically."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ..atomic_io import atomic_output_dir

logger = logging.getLogger(__name__)

_CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# The Trainer writes trainer_state.json last, so a checkpoint without it was interrupted while being saved.
_COMPLETE_MARKER = "trainer_state.json"


def latest_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete ``checkpoint-N`` in ``output_dir``; incomplete ones are skipped with a warning."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = []
    for path in output_dir.iterdir():
        match = _CHECKPOINT_PATTERN.match(path.name)
        if match and path.is_dir():
            if (path / _COMPLETE_MARKER).is_file():
                found.append((int(match.group(1)), path))
            else:
                logger.warning("Ignoring incomplete checkpoint %s (no %s).", path, _COMPLETE_MARKER)
    return str(max(found)[1]) if found else None


def resume_path(resume: str | bool | None, output_dir: str | Path) -> str | None:
    """Checkpoint to resume from: ``None``/``False`` -> none, ``True``/``"latest"`` -> newest complete one."""
    if resume is None or resume is False:
        return None
    if resume is True or resume == "latest":
        path = latest_checkpoint(output_dir)
        if path is None:
            raise FileNotFoundError(f"--resume: no complete checkpoint in {output_dir}; start without --resume.")
        return path
    if not (Path(resume) / _COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"--resume {resume}: not a complete Trainer checkpoint (no {_COMPLETE_MARKER}).")
    return str(resume)


def save_final_model(model, processor, target: str | Path, metrics: dict) -> None:
    """Write model, image processor and ``eval_results.json`` to a temporary directory beside ``target``, then
    rename it into place (replacing an earlier result only once the new one is complete)."""
    with atomic_output_dir(target, overwrite=True) as temporary:
        model.save_pretrained(temporary)
        processor.save_pretrained(temporary)
        (temporary / "eval_results.json").write_text(json.dumps(metrics, indent=2))
