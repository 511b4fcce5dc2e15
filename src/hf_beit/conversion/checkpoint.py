"""Safe reading of original BEiT checkpoints (unilm ``.pth``, DeepSpeed ``mp_rank_00_model_states.pt``, mmseg).

The file is untrusted: it is unpickled with ``weights_only=True``, and what it describes is checked before a model is
built from it. The transformer blocks must be numbered ``0..N-1`` without gaps, and every block must hold the same
tensors with the same shapes as block 0, so the depth a converter builds is backed by tensors actually present (one
key ``blocks.99999.norm1.weight`` cannot ask for 100000 layers); every floating-point weight must be finite.
"""

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
_BLOCK_KEY = re.compile(r"^(?:backbone\.)?blocks\.(\d+)\.(.+)$")


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


def _check_blocks(state_dict: dict, path: Path) -> None:
    """Blocks ``0..N-1`` without gaps, each with the tensors (names and shapes) of block 0."""
    blocks: dict[int, dict[str, tuple[int, ...]]] = {}
    for key, value in state_dict.items():
        match = _BLOCK_KEY.match(key)
        if match is None:
            continue
        number = match.group(1)
        if number != str(int(number)):
            raise CheckpointError(f"{path}: block number in {key!r} is not written canonically; not a BEiT checkpoint.")
        blocks.setdefault(int(number), {})[match.group(2)] = tuple(value.shape)
    if not blocks:
        return  # reported by the converter ("no transformer blocks")
    missing = sorted(set(range(max(blocks) + 1)) - set(blocks))
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise CheckpointError(
            f"{path}: transformer blocks are not numbered 0..{max(blocks)} without gaps ({len(missing)} missing: "
            f"{shown}); the checkpoint is damaged or not a BEiT checkpoint."
        )
    first = blocks[0]
    for number, tensors in blocks.items():
        if tensors == first:
            continue
        only_first = [f"blocks.0.{name}" for name in sorted(first.keys() - tensors.keys())]
        only_here = [f"blocks.{number}.{name}" for name in sorted(tensors.keys() - first.keys())]
        shapes = [f"blocks.{number}.{name} {tensors[name]} vs {first[name]}"
                  for name in sorted(first.keys() & tensors.keys()) if tensors[name] != first[name]]
        details = ", ".join((only_first + only_here + shapes)[:5])
        raise CheckpointError(
            f"{path}: block {number} does not hold the same tensors as block 0 ({details}); the checkpoint is "
            "damaged or not a BEiT checkpoint."
        )


def _check_finite(state_dict: dict, path: Path) -> None:
    bad = [key for key, value in state_dict.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values ({', '.join(bad[:5])}); the training "
            "run diverged or the file is damaged. Convert an earlier checkpoint."
        )


def load_original_checkpoint(path: str | os.PathLike, use_ema: bool = False) -> OriginalCheckpoint:
    """Read an original checkpoint with ``torch.load(weights_only=True)`` and return its weights.

    The weights may sit under ``model`` (unilm), ``module`` (DeepSpeed), ``state_dict`` (mmseg) or at the top level;
    a leading ``module.`` prefix is stripped. ``use_ema`` takes ``model_ema`` instead. Raises ``CheckpointError``
    for missing, unreadable, truncated, unsafe or non-BEiT files, blocks not numbered ``0..N-1`` with equal
    contents, and non-finite weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist or is not a file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty. Download the file again.")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"Checkpoint {path} cannot be read (permission denied); check its permissions.")
    obj = _torch_load(path)
    weights, container = _select_weights(obj, use_ema)
    state_dict = _strip_module_prefix(weights)
    _check_beit(state_dict, path)
    _check_blocks(state_dict, path)
    _check_finite(state_dict, path)
    metadata = obj.get("meta", {}) if isinstance(obj.get("meta"), Mapping) else {}
    return OriginalCheckpoint(state_dict=state_dict, container=container, path=str(path), metadata=dict(metadata))
