"""The size an image is resized to, from transformers' ``size`` dicts and mmcv's keep-ratio rule (pure Python: the
pixel budget predicts it from an image header without importing torch)."""

from __future__ import annotations

from collections.abc import Mapping

#: Accepted ``size`` layouts (set of keys) of ``output_size``.
SIZE_LAYOUTS = (
    frozenset({"height", "width"}),
    frozenset({"shortest_edge"}),
    frozenset({"shortest_edge", "longest_edge"}),
    frozenset({"max_height", "max_width"}),
)


def output_size(height: int, width: int, size: Mapping[str, int]) -> tuple[int, int]:
    """The ``(height, width)`` an ``height x width`` image is resized to for a ``size`` dict (transformers' keys).

    * ``{"height", "width"}``: exactly that size;
    * ``{"shortest_edge": S}``: the short side becomes S, the long side ``floor(S * long / short)``;
    * ``{"shortest_edge": S, "longest_edge": L}``: the same, but S is lowered (to ``round(L * short / long)``) when
      the long side would exceed L; an image whose short side already equals S keeps its size;
    * ``{"max_height", "max_width"}``: the largest size with the same aspect ratio that fits (floored).
    """
    keys = frozenset(key for key, value in size.items() if value is not None)
    if keys not in SIZE_LAYOUTS:
        raise ValueError(
            f"size must have the keys {' or '.join(str(sorted(layout)) for layout in SIZE_LAYOUTS)}, got {dict(size)}."
        )
    if keys == {"height", "width"}:
        return int(size["height"]), int(size["width"])
    if keys == {"max_height", "max_width"}:
        scale = min(size["max_height"] / height, size["max_width"] / width)
        return int(height * scale), int(width * scale)
    short, long = min(height, width), max(height, width)
    target = int(size["shortest_edge"])
    capped = None  # the (fractional) short side that puts the long side exactly at longest_edge
    if "longest_edge" in keys and long / short * target > size["longest_edge"]:
        capped = size["longest_edge"] * short / long
        target = round(capped)
    if short == target:
        return height, width
    new_long = int((capped if capped is not None else target) * long / short)
    return (target, new_long) if height <= width else (new_long, target)


def mmcv_output_size(height: int, width: int, size: Mapping[str, int]) -> tuple[int, int]:
    """mmcv's ``imrescale`` size for ``{"shortest_edge": S, "longest_edge": L}`` (mmseg's ``Resize(keep_ratio=True,
    img_scale=(L, S))``): scale ``min(L / long, S / short)``, each side ``int(side * scale + 0.5)``; any other
    ``size`` layout as :func:`output_size`."""
    if set(size) != {"shortest_edge", "longest_edge"}:
        return output_size(height, width, size)
    scale = min(size["longest_edge"] / max(height, width), size["shortest_edge"] / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)
