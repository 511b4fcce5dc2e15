"""Model and dataset names as users write them: a local folder, or a Hugging Face Hub id (``org/name[@revision]``).

Hub ids are resolved with ``huggingface_hub`` (``snapshot_download``), so ``HF_HUB_OFFLINE=1`` uses the local cache
only, ``HF_HUB_CACHE``/``HF_HOME`` pick the cache and ``HF_ENDPOINT`` another Hub. Used by every command and
pipeline that names a model (``predict``, ``segment``, ``serve``, ``export``, ``pipeline``, ``train --init-from``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# What a model repo needs here: configs, weights (safetensors first; .bin for old repos), labels and the card.
MODEL_FILES = ("*.json", "*.safetensors", "*.bin", "*.txt", "README.md")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def is_hub_id(name: str | os.PathLike) -> bool:
    """Whether ``name`` reads as a Hub id (``org/name[@revision]``) rather than a local path."""
    text = str(name)
    return not Path(text).exists() and bool(_REPO_ID.match(text)) and not text.startswith((".", "/", "~"))


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """The local folder holding the model ``name_or_path`` names (downloaded into, or found in, the HF cache).

    Raises ``FileNotFoundError`` with what was tried when it is neither an existing folder nor a reachable Hub repo.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if not is_hub_id(name_or_path):
        raise FileNotFoundError(
            f"{str(name_or_path)!r} is not a model folder (a directory written by save_pretrained, with config.json) "
            "and not a Hugging Face Hub id like 'microsoft/beit-base-patch16-224'."
        )
    return _snapshot(str(name_or_path), "model", list(MODEL_FILES))


def resolve_dataset_dir(name: str) -> Path:
    """The local snapshot of the Hub dataset ``name`` (``org/name[@revision]``), from the HF cache or downloaded."""
    return _snapshot(name, "dataset", None)


def _snapshot(text: str, repo_type: str, patterns: list[str] | None) -> Path:
    repo_id, _, revision = text.partition("@")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(
            snapshot_download(repo_id, repo_type=repo_type, revision=revision or None, allow_patterns=patterns)
        )
    except LocalEntryNotFoundError as error:
        raise FileNotFoundError(
            f"{text!r} is not a local folder and is not in the Hugging Face cache, and downloads are off "
            "(HF_HUB_OFFLINE=1 or no network). Download it first (huggingface-cli download ...) or pass a folder."
        ) from error
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise FileNotFoundError(f"Could not get {text!r} from the Hugging Face Hub: {error}") from error
