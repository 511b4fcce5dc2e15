"""``BeitImageProcessor``: transformers' BEiT image processor, faster, with correct label maps and named presets.

It subclasses ``transformers.BeitImageProcessor`` (``isinstance`` holds for pipelines and Auto classes; same
constructor keys, same ``preprocessor_config.json`` with ``image_processor_type: "BeitImageProcessor"``, so a
directory saved here loads in stock transformers with the same settings) but runs its own pipeline: it overrides
only the public entry points ``preprocess`` / ``__call__`` and calls none of the methods of transformers' processing
backends (their private ``_preprocess*`` / ``process_image`` hooks changed signatures within 5.x). What it still
takes from transformers is the public configuration machinery (constructor, ``from_dict`` / ``to_dict`` /
``save_pretrained``, ``valid_kwargs``), ``BatchFeature`` and ``post_process_semantic_segmentation``;
``tests/test_image_processing_contract.py`` fails if any of that changes meaning. Its output therefore does not
depend on the transformers version. Differences from stock:

* **Speed** (>= 2x stock on real photographs, same output within 1e-6): images stay uint8 channel-last views of the
  decoded buffer (no ``.contiguous()`` copy of the full-size image), are resized by torch's antialiased uint8
  kernels, cropped as views, then copied once into a preallocated float32 batch and rescaled + normalised in
  place, block by block (small blocks run inline, so a loaded machine's thread pool does not stall them). RGB PIL
  images are read without a copy through Pillow's Arrow export. See ``benchmarks/bench_preprocessing.py``.
* **Any image mode**: ``do_convert_rgb`` defaults to ``True`` (stock: ``None``, which fails on L/RGBA/P/CMYK
  images). Transparency is composited onto white as transformers >= 5.21 does (older versions dropped the alpha
  channel); 16-bit greyscale (``I;16``, e.g. 16-bit PNG, or uint16 arrays) is scaled to 8 bits instead of being
  clipped to white (deliberate difference). 2-D arrays are greyscale images (stock rejects them).
* **Segmentation maps** are resized with NEAREST (torchvision ``NEAREST_EXACT``, equal to stock with
  ``resample=NEAREST``), so labels remain class ids of the input; stock 5.23 resizes them with the image
  ``resample`` and invents ids.
* **Legacy ``reduce_labels``** (old Hub configs, old call sites) is honoured as ``do_reduce_labels``; stock 5.23
  silently ignores it.
* ``crop_rounding`` (extra key, ignored by stock): ``"floor"`` (default) places the centre crop like transformers,
  ``"round"`` like ``torchvision.transforms.CenterCrop`` as used by unilm's evaluation; they differ by one pixel
  when the excess is odd.
* ``from_preset(name)`` builds the preprocessing of the original papers/checkpoints (see ``PRESETS``).
* Unknown keyword arguments raise ``TypeError`` (as stock); ``data_format`` other than channels-first raises
  instead of being ignored; ``do_pad`` is not part of BEiT's preprocessing and is ignored with a warning.

``post_process_semantic_segmentation`` is transformers' (bilinear resize of the logits, then argmax).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import transformers
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.utils import logging

from .image_kernels import (
    CROP_ROUNDINGS,
    RESIZE_MODES,
    center_crop,
    interpolation_mode,
    rescale_and_normalize_into_batch,
    resize,
)
from .image_processing_inputs import flatten_images, flatten_label_maps, image_tensor, label_map_tensor
from .resize_geometry import mmcv_output_size, output_size
from .segmentation_labels import reduce_labels

__all__ = [
    "NORMALIZATIONS",
    "PRESETS",
    "PRESET_KINDS",
    "BeitImageProcessor",
    "BeitImageProcessorKwargs",
    "preset_settings",
]

logger = logging.get_logger(__name__)

NORMALIZATIONS: dict[str, dict[str, list[float]]] = {
    "inception": {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},  # BEiT v1's mean = std = 0.5
    "imagenet": {"image_mean": list(IMAGENET_DEFAULT_MEAN), "image_std": list(IMAGENET_DEFAULT_STD)},
}


def unilm_eval_resize(size: int) -> int:
    """unilm's ImageNet eval resize of the short side: ``int(S / crop_pct)``, crop_pct 224/256 below 384, else 1."""
    crop_pct = 224 / 256 if size < 384 else 1.0
    return int(size / crop_pct)


def _imagenet_eval(size: int) -> dict[str, Any]:
    """unilm's ImageNet evaluation (``datasets.build_transform``): PIL-bicubic resize of the short side to
    :func:`unilm_eval_resize`, centre crop S with torchvision's rounding."""
    return {
        "do_resize": True,
        "size": {"shortest_edge": unilm_eval_resize(size)},
        "resample": PILImageResampling.BICUBIC,
        "do_center_crop": True,
        "crop_size": {"height": size, "width": size},
        "crop_rounding": "round",
    }


def _ade20k(size: int) -> dict[str, Any]:
    """mmseg's ADE20k test pipeline: ``Resize(img_scale=(4S, S), keep_ratio=True)`` (mmcv's rounding, OpenCV-style
    bilinear), reduce_zero_label; no crop (pair it with sliding-window inference, S windows at stride 2S/3)."""
    return {
        "do_resize": True,
        "size": {"shortest_edge": size, "longest_edge": 4 * size},
        "resample": PILImageResampling.BILINEAR,
        "resize_mode": "mmcv",
        "do_center_crop": False,
        "do_reduce_labels": True,
    }


def _hub(size: int) -> dict[str, Any]:
    """The ``microsoft/beit-*`` Hub configs (transformers' conversion script): squash to SxS, bilinear, no crop."""
    return {"do_resize": True, "size": {"height": size, "width": size}, "resample": PILImageResampling.BILINEAR,
            "do_center_crop": False}  # fmt: skip


#: Preset kinds for ``BeitImageProcessor.from_preset``: ``builder(size)`` and the default normalization.
PRESET_KINDS: dict[str, tuple[Any, str]] = {
    "imagenet-eval": (_imagenet_eval, "inception"),
    "ade20k": (_ade20k, "imagenet"),
    "hub": (_hub, "inception"),
}
#: The named presets of the released checkpoints; any ``<kind>-<size>`` works too (e.g. ``imagenet-eval-96``).
PRESETS = ("imagenet-eval-224", "imagenet-eval-384", "imagenet-eval-512", "ade20k-640", "hub-224", "hub-384", "hub-512")


def preset_settings(name: str, image_size: int | None = None, normalization: str | None = None) -> dict[str, Any]:
    """The processor keys of preset ``name`` (``"imagenet-eval-224"``, or ``"imagenet-eval"`` with ``image_size``);
    ``normalization`` (``"inception"``: mean = std = 0.5; ``"imagenet"``) replaces the kind's default."""
    kind, _, suffix = name.rpartition("-")
    if not (kind in PRESET_KINDS and suffix.isdigit()):
        kind, suffix = name, None
    if kind not in PRESET_KINDS:
        raise ValueError(
            f"Unknown BeitImageProcessor preset {name!r}. Available presets: {', '.join(PRESETS)}, or "
            f"<kind>-<size> / kind with image_size= for the kinds {', '.join(PRESET_KINDS)}."
        )
    size = image_size if image_size is not None else (int(suffix) if suffix else None)
    if size is None or size <= 0:
        raise ValueError(f"Preset {name!r} needs an image size: use '{kind}-<size>' or pass image_size=.")
    build, default_normalization = PRESET_KINDS[kind]
    normalization = normalization or default_normalization
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}.")
    return {**build(size), **NORMALIZATIONS[normalization]}


_Stock = transformers.BeitImageProcessor


class BeitImageProcessorKwargs(_Stock.valid_kwargs, total=False):
    r"""
    crop_rounding (`str`, *optional*, defaults to `self.crop_rounding`):
        Offset rounding of the centre crop when the excess is odd: `"floor"` (transformers) or `"round"`
        (`torchvision.transforms.CenterCrop`, used by unilm's evaluation).
    resize_mode (`str`, *optional*, defaults to `self.resize_mode`):
        `"transformers"` (its output sizes, antialiased resampling) or `"mmcv"` (mmseg's test pipeline: keep-ratio
        sizes rounded to nearest, OpenCV-style resampling without antialiasing).
    """

    crop_rounding: str
    resize_mode: str


#: Keyword arguments that configure the pipeline; ``preprocess`` reads each from the call or else the instance.
SETTINGS = (
    "do_convert_rgb",
    "do_resize",
    "size",
    "default_to_square",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_reduce_labels",
    "crop_rounding",
    "resize_mode",
)
#: Other call arguments ``preprocess`` reads (output format, device, input layout; ``do_pad`` only warns).
CALL_ARGUMENTS = ("return_tensors", "device", "input_data_format", "data_format", "do_pad")
# Keys of transformers' image kwargs that BEiT's preprocessing does not use: accepted, and with no effect on results.
_NO_EFFECT = frozenset({"disable_grouping", "image_seq_length", "pad_size"})


def _move_legacy_reduce_labels(kwargs: dict[str, Any]) -> None:
    """Turn the legacy ``reduce_labels`` key into ``do_reduce_labels`` (an explicit ``do_reduce_labels`` wins)."""
    if "reduce_labels" not in kwargs:
        return
    legacy = kwargs.pop("reduce_labels")
    if legacy is None:
        return
    current = kwargs.get("do_reduce_labels")
    if current is None:
        kwargs["do_reduce_labels"] = bool(legacy)
        logger.warning_once("`reduce_labels` is a deprecated name; it is applied as `do_reduce_labels`.")
    elif bool(current) != bool(legacy):
        logger.warning(
            f"Both do_reduce_labels={current} and legacy reduce_labels={legacy} were given; using "
            f"do_reduce_labels={current}."
        )


def _size_dict(value: Any, default_to_square: bool, name: str) -> dict[str, int] | None:
    """A ``size`` / ``crop_size`` value (int, ``(height, width)``, dict or transformers' ``SizeDict``) as a dict."""
    if value is None:
        return None
    if isinstance(value, int):
        return {"height": value, "width": value} if default_to_square else {"shortest_edge": value}
    if isinstance(value, (tuple, list)) and all(isinstance(item, int) for item in value):
        if len(value) == 1:
            return _size_dict(value[0], default_to_square, name)
        if len(value) == 2:
            return {"height": value[0], "width": value[1]}
    try:
        return {key: int(item) for key, item in dict(value).items() if item is not None}
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be an int, (height, width) or a dict such as {{'height': 224, 'width': 224}}, got {value!r}."
        ) from None


@dataclass(frozen=True)
class _Settings:
    do_convert_rgb: bool
    do_resize: bool
    size: dict[str, int] | None
    resample: Any
    do_center_crop: bool
    crop_size: dict[str, int] | None
    do_rescale: bool
    rescale_factor: float
    do_normalize: bool
    image_mean: Any
    image_std: Any
    do_reduce_labels: bool
    crop_rounding: str
    resize_mode: str

    @classmethod
    def resolve(cls, processor: BeitImageProcessor, kwargs: dict[str, Any]) -> _Settings:
        """Call arguments over instance attributes (``None`` = not given); checked for consistency."""
        values = {key: kwargs.pop(key, None) for key in SETTINGS}
        values = {key: getattr(processor, key, None) if value is None else value for key, value in values.items()}
        square = values.pop("default_to_square")
        values["size"] = _size_dict(values["size"], True if square is None else bool(square), "size")
        values["crop_size"] = _size_dict(values["crop_size"], True, "crop_size")
        for key in ("image_mean", "image_std"):
            if isinstance(values[key], (list, tuple)):
                values[key] = tuple(float(item) for item in values[key])
        for key in ("do_convert_rgb", "do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_reduce_labels"):
            values[key] = bool(values[key])
        values["resample"] = interpolation_mode(values["resample"]) if values["do_resize"] else None
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        missing = [
            ("do_resize", "size", self.do_resize and self.size is None),
            (
                "do_center_crop",
                "crop_size as {'height': H, 'width': W}",
                self.do_center_crop and self.crop_size is None,
            ),
            ("do_rescale", "rescale_factor", self.do_rescale and self.rescale_factor is None),
            (
                "do_normalize",
                "image_mean and image_std",
                self.do_normalize and None in (self.image_mean, self.image_std),
            ),
        ]
        for flag, needed, is_missing in missing:
            if is_missing:
                raise ValueError(f"{flag}=True needs {needed}; pass it or set {flag}=False.")
        if self.do_center_crop and self.crop_size.keys() != {"height", "width"}:
            raise ValueError(f"crop_size must have the keys 'height' and 'width', got {self.crop_size}.")
        _check_choice("crop_rounding", self.crop_rounding, CROP_ROUNDINGS)
        _check_choice("resize_mode", self.resize_mode, RESIZE_MODES)

    def geometry(self, image: torch.Tensor, mode: Any) -> torch.Tensor:
        """Resize (with ``mode``) and centre-crop one ``(C, H, W)`` image or ``(1, H, W)`` label map."""
        if self.do_resize:
            mmcv = self.resize_mode == "mmcv"
            height, width = (mmcv_output_size if mmcv else output_size)(image.shape[-2], image.shape[-1], self.size)
            image = resize(image, height, width, mode, antialias=not mmcv)
        if self.do_center_crop:
            image = center_crop(image, self.crop_size["height"], self.crop_size["width"], self.crop_rounding)
        return image


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


class BeitImageProcessor(_Stock):
    """BEiT image processor: fast, any PIL mode, NEAREST label maps, presets; its own pipeline on transformers' API.

    Constructor keys and outputs are those of ``transformers.BeitImageProcessor`` (of which it is a subclass); see
    the module docstring for the differences. Returns ``pixel_values`` (float32, ``(B, 3, H, W)``) and, with
    ``segmentation_maps``, ``labels`` (int64, ``(B, H, W)``).
    """

    valid_kwargs = BeitImageProcessorKwargs
    do_convert_rgb = True
    crop_rounding = "floor"
    resize_mode = "transformers"

    def __init__(self, **kwargs: Any) -> None:
        _move_legacy_reduce_labels(kwargs)
        extras = {key: kwargs.pop(key, None) for key in ("crop_rounding", "resize_mode")}
        super().__init__(**kwargs)
        self.crop_rounding = extras["crop_rounding"] or type(self).crop_rounding
        self.resize_mode = extras["resize_mode"] or type(self).resize_mode
        _check_choice("crop_rounding", self.crop_rounding, CROP_ROUNDINGS)
        _check_choice("resize_mode", self.resize_mode, RESIZE_MODES)

    @classmethod
    def from_dict(cls, image_processor_dict: dict[str, Any], **kwargs: Any):
        """Load from a ``preprocessor_config.json`` dict; the legacy ``reduce_labels`` key is honoured."""
        image_processor_dict = dict(image_processor_dict)
        _move_legacy_reduce_labels(image_processor_dict)
        _move_legacy_reduce_labels(kwargs)
        return super().from_dict(image_processor_dict, **kwargs)

    @classmethod
    def from_preset(
        cls, name: str, image_size: int | None = None, normalization: str | None = None, **overrides: Any
    ) -> BeitImageProcessor:
        """Build a processor from a preset; keyword ``overrides`` replace preset values.

        ``name`` is ``"<kind>-<size>"`` or a kind with ``image_size=``:

        * ``"imagenet-eval"``: unilm's ImageNet evaluation -- bicubic resize of the short side to ``int(S /
          crop_pct)`` (crop_pct 224/256 below 384, else 1: 224 -> 256, 384 -> 384), centre crop S (torchvision
          rounding), rescale 1/255, mean = std = 0.5;
        * ``"ade20k"``: mmseg's ADE20k test resize (keep ratio to fit 4S x S, mmcv rounding, OpenCV-style
          bilinear), ImageNet mean/std, ``do_reduce_labels=True``; no crop;
        * ``"hub"``: the ``microsoft/beit-*`` Hub configs -- squash to SxS, bilinear, no crop, mean = std = 0.5.

        ``normalization`` (``"inception"`` or ``"imagenet"``) replaces the kind's mean/std (e.g. BEiT v2 and the
        ImageNet-1k-only BEiT use ImageNet's).
        """
        return cls(**{**preset_settings(name, image_size, normalization), **overrides})

    def __call__(self, images: Any = None, segmentation_maps: Any = None, **kwargs: Any) -> BatchFeature:
        """Same as ``preprocess``."""
        return self.preprocess(images, segmentation_maps, **kwargs)

    def preprocess(self, images: Any, segmentation_maps: Any = None, **kwargs: Any) -> BatchFeature:
        """Preprocess images (PIL / numpy / torch / file paths, single or batched) and optional segmentation maps.

        Keyword arguments override the instance's settings for this call (``size``, ``resample``, ``crop_size``,
        ``do_reduce_labels``, ...), plus ``return_tensors`` (``None``: lists of per-image tensors; ``"pt"``;
        ``"np"``), ``device``, ``input_data_format`` and ``data_format`` (channels-first only).
        """
        _move_legacy_reduce_labels(kwargs)
        unknown = set(kwargs) - set(self.valid_kwargs.__annotations__)
        if unknown:
            raise TypeError(
                f"BeitImageProcessor got unexpected keyword argument(s) {sorted(unknown)}; valid ones are "
                f"{sorted(self.valid_kwargs.__annotations__)}."
            )
        settings = _Settings.resolve(self, kwargs)
        return_tensors, device = kwargs.pop("return_tensors", None), kwargs.pop("device", None)
        input_data_format = kwargs.pop("input_data_format", None)
        if kwargs.pop("data_format", None) not in (None, "channels_first"):
            raise ValueError("BeitImageProcessor returns channels-first pixel values only; drop data_format.")
        if kwargs.pop("do_pad", None):
            logger.warning_once("do_pad is not part of BEiT's preprocessing and is ignored.")
        unused = set(kwargs) - _NO_EFFECT
        if unused:  # keys a newer transformers added to its image kwargs, unknown to this pipeline
            logger.warning_once(f"BeitImageProcessor does not use {sorted(unused)}; ignored.")

        pixels = []
        for image in flatten_images(images):
            tensor = image_tensor(image, settings.do_convert_rgb, input_data_format)
            if device is not None:
                tensor = tensor.to(device)
            pixels.append(settings.geometry(tensor, settings.resample))
        data: dict[str, Any] = {
            "pixel_values": rescale_and_normalize_into_batch(
                pixels,
                settings.do_rescale,
                settings.rescale_factor,
                settings.do_normalize,
                settings.image_mean,
                settings.image_std,
            )
        }
        if segmentation_maps is not None:
            data["labels"] = self._labels(segmentation_maps, settings, device)
            if len(data["labels"]) != len(pixels):
                raise ValueError(
                    f"Got {len(pixels)} images but {len(data['labels'])} segmentation maps; pass one (H, W) map of "
                    "class ids per image."
                )
        if return_tensors is None:  # transformers returns lists of per-image tensors in this case
            data = {key: list(value) if isinstance(value, torch.Tensor) else value for key, value in data.items()}
        return BatchFeature(data=data, tensor_type=return_tensors)

    @staticmethod
    def _labels(segmentation_maps: Any, settings: _Settings, device: Any) -> torch.Tensor | list[torch.Tensor]:
        """Label maps -> int64 ``(H, W)``: reduce labels, NEAREST resize, centre crop (same geometry as images)."""
        nearest = interpolation_mode(PILImageResampling.NEAREST)
        labels = []
        for segmentation_map in flatten_label_maps(segmentation_maps):
            label = label_map_tensor(segmentation_map)
            if device is not None:
                label = label.to(device)
            if settings.do_reduce_labels:
                label = reduce_labels(label)
            labels.append(settings.geometry(label[None], nearest)[0].to(torch.int64))
        if labels and all(label.shape == labels[0].shape for label in labels):
            return torch.stack(labels)
        return labels
