"""Safe reading of original BEiT checkpoints (unilm ``.pth``, DeepSpeed ``mp_rank_00_model_states.pt``, mmseg)."""

from __future__ import annotations

import argparse
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import CheckpointError

# Top-level keys that may hold the weights, in the order unilm's and mmseg's loaders try them.
CONTAINER_KEYS = ("model", "module", "state_dict")
# Non-tensor objects found in original files that are safe to rebuild (unilm saves its argparse namespace).
_SAFE_GLOBALS = [argparse.Namespace]


@dataclass
class OriginalCheckpoint:
    """Weights of an original checkpoint with unilm key names, plus where they were found."""

    state_dict: dict[str, torch.Tensor]
    container: str  # "model", "module", "state_dict", "model_ema" or "bare"
    path: str
    metadata: dict = field(default_factory=dict)


def _torch_load(path: Path):
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        match = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if match is None:
            raise CheckpointError(
                f"{path} is not a valid PyTorch checkpoint (it could not be unpickled). Download the file again."
            ) from error
        raise CheckpointError(
            f"{path} contains a Python object of type {match.group(1)} that cannot be loaded safely "
            "(torch.load(weights_only=True)). Re-save just the weights from a trusted environment, e.g. "
            "torch.save({'model': state_dict}, 'weights.pth')."
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(
            f"{path} is truncated or is not a PyTorch checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no details'}). Download the file again."
        ) from error
    except Exception as error:  # the unpickler raises KeyError/IndexError/... on arbitrary bytes
        raise CheckpointError(
            f"{path} is not a valid PyTorch checkpoint ({type(error).__name__} while unpickling). Download the file "
            "again."
        ) from error


def _select_weights(obj: object, use_ema: bool) -> tuple[Mapping, str]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"Expected a dict of weights, found a {type(obj).__name__}; this is not a BEiT checkpoint."
        )
    if use_ema:
        ema = obj.get("model_ema")
        if not isinstance(ema, Mapping) or not ema:
            raise CheckpointError(
                f"--use-ema was requested but the checkpoint has no 'model_ema' weights (top-level keys: "
                f"{', '.join(map(str, list(obj)[:10]))})."
            )
        return ema, "model_ema"
    for key in CONTAINER_KEYS:
        if isinstance(obj.get(key), Mapping) and obj[key]:
            return obj[key], key
    return obj, "bare"


def _strip_module_prefix(weights: Mapping) -> dict:
    keys = list(weights)
    if keys and all(isinstance(key, str) and key.startswith("module.") for key in keys):
        return {key[len("module.") :]: value for key, value in weights.items()}
    return dict(weights)


def _check_beit(state_dict: dict, path: Path) -> None:
    bad = [key for key, value in state_dict.items() if not isinstance(key, str) or not torch.is_tensor(value)]
    if bad:
        raise CheckpointError(f"{path}: entries {bad[:5]} are not tensors; this is not a model state dict.")
    if not any(key.endswith("patch_embed.proj.weight") for key in state_dict):
        sample = ", ".join(list(state_dict)[:8])
        raise CheckpointError(
            f"{path} is not a BEiT checkpoint: no 'patch_embed.proj.weight' among its {len(state_dict)} tensors "
            f"(first keys: {sample})."
        )


def load_original_checkpoint(path: str | os.PathLike, use_ema: bool = False) -> OriginalCheckpoint:
    """Read an original checkpoint with ``torch.load(weights_only=True)`` and return its weights.

    The weights may sit under ``model`` (unilm), ``module`` (DeepSpeed), ``state_dict`` (mmseg) or at the top level;
    a leading ``module.`` prefix is stripped. ``use_ema`` takes ``model_ema`` instead. Raises ``CheckpointError``
    for missing, truncated, unsafe or non-BEiT files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist or is not a file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty. Download the file again.")
    obj = _torch_load(path)
    weights, container = _select_weights(obj, use_ema)
    state_dict = _strip_module_prefix(weights)
    _check_beit(state_dict, path)
    metadata = obj.get("meta", {}) if isinstance(obj.get("meta"), Mapping) else {}
    return OriginalCheckpoint(state_dict=state_dict, container=container, path=str(path), metadata=dict(metadata))
