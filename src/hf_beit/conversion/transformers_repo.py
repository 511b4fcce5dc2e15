"""Repos written by transformers' ``save_pretrained`` -> hf_beit BEiT repos (data2vec-vision; BEiT, e.g. DiT).

transformers' data2vec-vision is a copy of its BEiT (model_type ``"data2vec-vision"``, weights under
``data2vec_vision.`` instead of ``beit.``, the same classic names below the prefix). Converting such a repo renames
the prefix, writes a ``model_type: "beit"`` config (``layer_norm_eps`` 1e-6 as in the original models) and a card
stating the upstream licence, so every hf_beit tool (pipelines, CLI, training, export) and stock transformers'
Beit classes load the result. Chosen over loading data2vec repos in place with a key rename: the converted repo is
an ordinary BEiT repo with its provenance and licence written down once, and no loader needs a special case.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..configuration_beit import BeitConfig
from ..data.labels import id2label_for
from ..tasks import get_task, task_of_architectures
from .errors import CheckpointError, ConversionError
from .families import BEIT, DATA2VEC_VISION, CheckpointFamily

# model_type -> family whose weight prefix and defaults apply
_FAMILIES = {"data2vec-vision": DATA2VEC_VISION, "beit": BEIT}
# transformers class name -> hf_beit class name (the same for BEiT)
_CLASSES = {
    "Data2VecVisionModel": "BeitModel",
    "Data2VecVisionForImageClassification": "BeitForImageClassification",
    "Data2VecVisionForSemanticSegmentation": "BeitForSemanticSegmentation",
}
_DROPPED_CONFIG_KEYS = (
    "model_type", "architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype", "out_features",
    "stage_names",
)


@dataclass
class TransformersRepo:
    """A repo as transformers writes it: its config, weights (as saved) and processor settings."""

    path: Path
    config: dict
    state_dict: dict[str, torch.Tensor]
    architecture: str  # transformers class named in config.json
    processor: dict | None

    @property
    def model_type(self) -> str:
        return self.config["model_type"]

    @property
    def family(self) -> CheckpointFamily:
        return _FAMILIES[self.model_type]

    @property
    def task(self) -> str:
        task = task_of_architectures([_CLASSES.get(self.architecture, self.architecture)])
        if task is None:
            raise ConversionError(f"{self.path}: architecture {self.architecture} has no hf_beit counterpart.")
        return task.name


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if (path / "model.safetensors").is_file():
        return load_file(str(path / "model.safetensors"))
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {key: value for shard in shards for key, value in load_file(str(path / shard)).items()}
    if (path / "pytorch_model.bin").is_file():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise CheckpointError(f"{path} has no model.safetensors (or shards, or pytorch_model.bin).")


def read_transformers_repo(path: str | os.PathLike) -> TransformersRepo:
    """Read a local repo written by ``save_pretrained`` of transformers' BEiT or data2vec-vision classes."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{path} is a directory without config.json, so it is not a transformers repo.")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("model_type") not in _FAMILIES:
        raise ConversionError(
            f"{path} holds a {config.get('model_type')!r} model; hf_beit converts transformers repos of model_type "
            f"{' or '.join(repr(t) for t in _FAMILIES)}."
        )
    architectures = config.get("architectures") or [f"{_FAMILIES[config['model_type']].title}Model"]
    processor_file = path / "preprocessor_config.json"
    processor = json.loads(processor_file.read_text(encoding="utf-8")) if processor_file.is_file() else None
    return TransformersRepo(path, config, _read_weights(path), architectures[0], processor)


# transformers 5.x saves data2vec-vision's UPerNet/FCN heads under its in-memory names; classic (4.x) names are
# mmseg's ConvModule names (conv/bn), which hf_beit uses.
_HEAD_RULES = (
    (r"decode_head\.psp_modules\.blocks\.(\d+)\.conv\.", r"decode_head.psp_modules.\1.1."),
    (r"decode_head\.psp_bottleneck\.", "decode_head.bottleneck."),
    (r"((?:decode|auxiliary)_head\..*)\.convolution\.weight$", r"\1.conv.weight"),
    (r"((?:decode|auxiliary)_head\..*)\.normalization\.", r"\1.bn."),
)


def _classic_head_name(key: str) -> str:
    for pattern, replacement in _HEAD_RULES:
        key = re.sub(pattern, replacement, key)
    return key


def rename_weights(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``{prefix}.`` -> ``beit.``; segmentation heads in transformers 5.x names -> classic (mmseg ConvModule)
    names; ``relative_position_index`` buffers dropped; everything else as saved."""
    renamed = {}
    for key, value in state_dict.items():
        if "relative_position_index" in key:
            continue
        key = "beit." + key[len(prefix) + 1 :] if key.startswith(prefix + ".") else _classic_head_name(key)
        renamed[key] = value
    return renamed


def beit_config(repo: TransformersRepo, id2label: dict[int, str] | None = None) -> BeitConfig:
    """The hf_beit ``BeitConfig`` of the repo's model (``out_indices`` kept for segmentation only, as blocks)."""
    values = {key: value for key, value in repo.config.items() if key not in _DROPPED_CONFIG_KEYS}
    task = get_task(repo.task)
    if task.name != "segmentation":
        values.pop("out_indices", None)
    if id2label is not None:
        values.update(id2label=id2label, label2id={name: index for index, name in id2label.items()})
    values.update(layer_norm_eps=1e-6, architectures=[task.architecture])
    return BeitConfig.from_dict(values)


def repo_notes(family: CheckpointFamily, source: str) -> list[str]:
    """The *Conversion* notes of a repo converted from transformers' format."""
    model_type = "beit" if family.weight_prefix == "beit" else family.name
    notes = [f"Read the transformers repo `{source}` (model_type `{model_type}`)."]
    if family.weight_prefix != "beit":
        notes.append(
            f"Renamed the weight prefix `{family.weight_prefix}.` to `beit.` (the names below it are transformers' "
            "classic BEiT names already) and wrote `model_type: \"beit\"`."
        )
    notes.append("`layer_norm_eps` set to 1e-6 as in the original models (transformers' configs say 1e-12).")
    return notes


def source_labels(repo: TransformersRepo, label_set: str | None) -> dict[int, str] | None:
    """Registry labels when an entry names a label set, else the repo's own ``id2label`` (classification)."""
    if repo.task not in ("classification", "segmentation"):
        return None
    if label_set is not None:
        return id2label_for(label_set)
    return {int(key): str(value) for key, value in (repo.config.get("id2label") or {}).items()} or None
