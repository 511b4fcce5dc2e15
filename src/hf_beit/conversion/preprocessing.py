"""``preprocessor_config.json`` presets that reproduce the original evaluation pipelines."""

from __future__ import annotations

from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers.image_utils import IMAGENET_STANDARD_MEAN as IMAGENET_INCEPTION_MEAN
from transformers.image_utils import IMAGENET_STANDARD_STD as IMAGENET_INCEPTION_STD

PIL_BILINEAR, PIL_BICUBIC = 2, 3
PRESETS = ("imagenet-inception", "imagenet-default", "ade20k")


def eval_resize_size(image_size: int) -> int:
    """unilm's eval resize: short side ``int(S / crop_pct)``, crop_pct 224/256 below 384 and 1.0 from 384 on."""
    crop_pct = 224 / 256 if image_size < 384 else 1.0
    return int(image_size / crop_pct)


def preprocessor_config(preset: str, image_size: int) -> dict:
    """The processor settings of a preset, as ``BeitImageProcessor`` keys.

    * ``imagenet-inception``: bicubic resize of the short side to ``eval_resize_size(S)``, centre crop S,
      mean = std = 0.5 (unilm's ImageNet-22k/1k evaluation).
    * ``imagenet-default``: same geometry with ImageNet mean/std (IN-1k self-supervised runs).
    * ``ade20k``: bilinear resize to SxS, ImageNet mean/std, ``do_reduce_labels`` (0 -> 255, k -> k-1) as mmseg's
      ``reduce_zero_label``; the original evaluates with a sliding window of S, stride ``2S/3``.
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preprocessing preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    config = {
        "image_processor_type": "BeitImageProcessor",
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "do_reduce_labels": preset == "ade20k",
    }
    if preset == "ade20k":
        return {
            **config,
            "do_resize": True,
            "size": {"height": image_size, "width": image_size},
            "resample": PIL_BILINEAR,
            "do_center_crop": False,
            "image_mean": IMAGENET_DEFAULT_MEAN,
            "image_std": IMAGENET_DEFAULT_STD,
        }
    inception = preset == "imagenet-inception"
    return {
        **config,
        "do_resize": True,
        "size": {"shortest_edge": eval_resize_size(image_size)},
        "resample": PIL_BICUBIC,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "image_mean": IMAGENET_INCEPTION_MEAN if inception else IMAGENET_DEFAULT_MEAN,
        "image_std": IMAGENET_INCEPTION_STD if inception else IMAGENET_DEFAULT_STD,
    }
