"""BEiT configuration: transformers' `BeitConfig` fields (config.json interchangeable) plus presets."""

from __future__ import annotations

import itertools
import re
from typing import Any

import transformers
from huggingface_hub.dataclasses import strict

from .config_bounds import check_config_bounds
from .tasks import TASKS

_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096}
#: The sizes of the released BEiT models.
MODEL_SIZES: dict[str, dict[str, int]] = {"base": _BASE, "large": _LARGE}
# Architecture facts shared by every released BEiT v1 checkpoint (unilm's BEiT model definitions and run scripts).
_ORIGINAL = {"patch_size": 16, "layer_norm_eps": 1e-6, "use_absolute_position_embeddings": False, "hidden_act": "gelu"}
_FINETUNED = {"use_relative_position_bias": True, "use_mean_pooling": True}
_MIM = {"use_shared_relative_position_bias": True, "use_mask_token": True, "vocab_size": 8192}
_SEGMENTATION = {"use_relative_position_bias": True, "image_size": 640, "num_labels": 150, "use_auxiliary_head": True}

BEIT_PRESETS: dict[str, dict[str, Any]] = {
    "beit-base-patch16-224-pt22k": {**_ORIGINAL, **_BASE, **_MIM, "image_size": 224, "layer_scale_init_value": 0.1},
    "beit-large-patch16-224-pt22k": {**_ORIGINAL, **_LARGE, **_MIM, "image_size": 224, "layer_scale_init_value": 1e-5},
    "beit-base-patch16-224": {**_ORIGINAL, **_BASE, **_FINETUNED, "image_size": 224, "layer_scale_init_value": 0.1},
    "beit-base-patch16-384": {**_ORIGINAL, **_BASE, **_FINETUNED, "image_size": 384, "layer_scale_init_value": 0.1},
    "beit-large-patch16-224": {**_ORIGINAL, **_LARGE, **_FINETUNED, "image_size": 224, "layer_scale_init_value": 1e-5},
    "beit-large-patch16-384": {**_ORIGINAL, **_LARGE, **_FINETUNED, "image_size": 384, "layer_scale_init_value": 1e-5},
    "beit-large-patch16-512": {**_ORIGINAL, **_LARGE, **_FINETUNED, "image_size": 512, "layer_scale_init_value": 1e-5},
    "beit-base-patch16-640": {
        **_ORIGINAL, **_BASE, **_SEGMENTATION, "out_indices": [3, 5, 7, 11], "layer_scale_init_value": 0.1,
    },
    "beit-large-patch16-640": {
        **_ORIGINAL, **_LARGE, **_SEGMENTATION, "out_indices": [7, 11, 15, 23], "layer_scale_init_value": 1e-6,
    },
}


@strict
class BeitConfig(transformers.BeitConfig):
    """Configuration of hf_beit models.

    Same fields, defaults and ``model_type`` ("beit") as ``transformers.BeitConfig``, so a ``config.json`` written by
    either package loads in the other. One deliberate difference in meaning: ``out_indices`` are the 0-based
    *blocks* after which features are taken, by the segmentation model and the backbone alike (unilm/mmseg/detectron2
    semantics; base ``[3, 5, 7, 11]``); stock transformers indexes ``stage_names = ["stem", "stage1", ...]``
    instead. ``out_features`` are stock's stage names of the tensors taken (block ``i`` -> ``"stage{i+1}"``), so
    the same ``out_features`` select the same tensors in both packages. See README "Feature taps".
    """

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BeitConfig:
        """Build the configuration of a released BEiT v1 architecture, e.g. ``"beit-base-patch16-224"``."""
        if name not in BEIT_PRESETS:
            raise KeyError(f"Unknown BEiT preset {name!r}. Available presets: {', '.join(sorted(BEIT_PRESETS))}.")
        return cls(**{**BEIT_PRESETS[name], **overrides})

    @property
    def image_size_2d(self) -> tuple[int, int]:
        """``image_size`` as ``(height, width)``."""
        return _pair(self.image_size)

    @property
    def patch_size_2d(self) -> tuple[int, int]:
        """``patch_size`` as ``(height, width)``."""
        return _pair(self.patch_size)

    @property
    def window_size(self) -> tuple[int, int]:
        """Patch grid of the configured image size; relative-position tables are sized for it."""
        (h, w), (ph, pw) = self.image_size_2d, self.patch_size_2d
        return h // ph, w // pw

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> BeitConfig:
        """As transformers', except that sizes are checked first (:func:`hf_beit.config_bounds.check_config_bounds`:
        ``num_hidden_layers: 1000000`` is an error, not a hang) and ``out_indices=``/``out_features=`` kwargs replace
        the saved taps before the config is built, so they also apply to files whose taps hf_beit cannot read as
        blocks."""
        check_config_bounds({**config_dict, **kwargs})  # a config.json is untrusted input: refuse absurd sizes first
        taps = {key: kwargs.pop(key) for key in ("out_indices", "out_features") if key in kwargs}
        if taps:
            config_dict = {**config_dict, "out_indices": None, "out_features": None, **taps}
        return super().from_dict(config_dict, **kwargs)

    def set_output_features_output_indices(self, out_features: list[str] | None, out_indices: list[int] | None) -> None:
        """Set the feature taps from ``out_indices`` (0-based blocks) and/or ``out_features`` (stage names).

        Also called by ``config.out_indices = ...`` and ``config.out_features = ...``. Raises ``ValueError`` for
        taps that name no block, repeat one or are out of order.
        """
        blocks = _resolve_taps(self.num_hidden_layers, out_indices, out_features)
        self._out_indices = blocks
        self._out_features = [f"stage{block + 1}" for block in blocks]

    def verify_out_features_out_indices(self) -> None:
        """Check that ``out_indices`` are valid blocks and ``out_features`` their stage names."""
        self.set_output_features_output_indices(self._out_features, self._out_indices)

    def to_dict(self) -> dict[str, Any]:
        """Serialise; the taps are written so that stock ``transformers.BeitConfig`` accepts them (``_file_taps``)."""
        output = super().to_dict()
        segmentation = TASKS["segmentation"].architecture in (self.architectures or ())
        output["out_indices"], output["out_features"] = _file_taps(self._out_indices, self.num_hidden_layers,
                                                                   segmentation)
        return output


def _pair(value: int | list[int] | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _stock_name(index: int) -> str:
    """Stock transformers' name for an index into its ``stage_names`` (``["stem", "stage1", ...]``)."""
    return "stem" if index == 0 else f"stage{index}"


def _taps_error(depth: int, given: Any, problem: str) -> ValueError:
    return ValueError(
        f"Invalid feature taps {given}: {problem}. hf_beit reads out_indices as the 0-based blocks after which "
        f"features are taken (unilm/mmseg meaning, e.g. [3, 5, 7, 11] for base): each must be a 0-based block index "
        f"below {depth}, or -{depth}..-1 from the end ({depth} = num_hidden_layers, stock transformers' default, also "
        f"means the last block), increasing, without repeats. out_features are their stage names, 'stage{{i+1}}' "
        f"for block i (stage1..stage{depth}). To replace the taps of a saved config, pass out_indices= or "
        "out_features= to from_pretrained."
    )


def _blocks_from_indices(depth: int, indices: list[int]) -> list[int]:
    blocks = []
    for index in indices:
        if not -depth <= index <= depth:
            raise _taps_error(depth, indices, f"{index} is out of range")
        blocks.append(depth - 1 if index == depth else index % depth)
    return _increasing(depth, indices, blocks)


def _increasing(depth: int, given: list, blocks: list[int]) -> list[int]:
    if any(later <= earlier for earlier, later in itertools.pairwise(blocks)):
        raise _taps_error(depth, given, f"they name the blocks {blocks}, which are not strictly increasing")
    return blocks


def _blocks_from_names(depth: int, names: list[str]) -> list[int]:
    blocks = []
    for name in names:
        match = re.fullmatch(r"stage(\d+)", str(name))
        if name == "stem":
            raise _taps_error(depth, names, "'stem' is the embedding output, not the output of a block")
        if match is None or not 1 <= int(match.group(1)) <= depth:
            raise _taps_error(depth, names, f"{name!r} is not a stage name")
        blocks.append(int(match.group(1)) - 1)
    return _increasing(depth, names, blocks)


def _resolve_taps(depth: int, out_indices: list[int] | None, out_features: list[str] | None) -> list[int]:
    """The 0-based blocks tapped; the last block when neither is given (stock's default ``[depth]`` too).

    With both given, ``out_features`` must be either our names of the blocks or stock's pairing of the same
    numbers (what ``config.json`` holds, written by either package); the numbers are read as blocks.
    """
    if out_indices is None:
        return [depth - 1] if out_features is None else _blocks_from_names(depth, list(out_features))
    blocks = _blocks_from_indices(depth, list(out_indices))
    if out_features is not None:
        ours = [f"stage{block + 1}" for block in blocks]
        stock = [_stock_name(index % (depth + 1)) for index in out_indices]
        if list(out_features) not in (ours, stock):
            raise _taps_error(
                depth, {"out_indices": list(out_indices), "out_features": list(out_features)},
                f"out_features do not name the blocks {blocks} ({ours})",
            )
    return blocks


def _file_taps(blocks: list[int], depth: int, segmentation: bool) -> tuple[list[int], list[str]]:
    """``(out_indices, out_features)`` as written to ``config.json``.

    The last block alone is written as stock's default ``[depth]`` / ``["stage{depth}"]``: the one spelling both
    packages read as the same tensor. Other taps are written as our blocks (the numbers of the Hub's ADE20k
    configs), paired with stock's names for those numbers so that stock's ``BeitConfig`` (and a stock UperNet around
    hf_beit's backbone) accepts them -- except in a *segmentation* config: stock's ``BeitForSemanticSegmentation``
    would take its features two blocks earlier and give different masks without a word, so there the numbers are
    paired with our names of the blocks, which stock's validation refuses: a stock user gets an error at load time
    instead of silently different masks (README "Feature taps").
    """
    if blocks == [depth - 1]:
        return [depth], [f"stage{depth}"]
    if segmentation:
        return list(blocks), [f"stage{block + 1}" for block in blocks]
    return list(blocks), [_stock_name(block) for block in blocks]
