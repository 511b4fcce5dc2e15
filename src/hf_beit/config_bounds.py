"""Bounds on the sizes a BEiT configuration may ask for, checked before anything is built from it.

A ``config.json`` is input like any other: ``"num_hidden_layers": 1000000`` makes building its model hang (and even
the configuration itself takes seconds: it lists a stage name per layer). :func:`check_config_bounds` refuses such
values at once, with a ``ConfigBoundsError`` (a ``ValueError``) naming the field, from a ``dict`` (a parsed
``config.json``) or a config object. The bounds are far above every released BEiT (large: 24 layers, 1024 wide,
16 heads, 512 pixels, 21841 classes) and can be raised for one process with ``HF_BEIT_MAX_PARAMETERS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["FIELD_BOUNDS", "ConfigBoundsError", "check_config_bounds", "max_parameters"]

#: Largest value accepted per field (all must be integers >= 1 where present).
FIELD_BOUNDS: dict[str, int] = {
    "num_hidden_layers": 1024,
    "hidden_size": 32768,
    "num_attention_heads": 1024,
    "intermediate_size": 262144,
    "patch_size": 1024,
    "image_size": 16384,
    "num_channels": 64,
    "num_labels": 1_000_000,
    "vocab_size": 1_000_000,
    "auxiliary_channels": 32768,
    "auxiliary_num_convs": 64,
}
_DEFAULT_MAX_PARAMETERS = 20_000_000_000  # 80 GB of float32 weights


class ConfigBoundsError(ValueError):
    """A configuration asks for sizes beyond :data:`FIELD_BOUNDS` or :func:`max_parameters`."""


def max_parameters() -> int:
    """The parameter budget of a configuration (``HF_BEIT_MAX_PARAMETERS``, default 2e10)."""
    value = os.environ.get("HF_BEIT_MAX_PARAMETERS")
    return int(value) if value and value.isdigit() else _DEFAULT_MAX_PARAMETERS


def _get(config: Mapping[str, Any] | Any, name: str) -> Any:
    return config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)


def _sizes(name: str, value: Any) -> list[Any]:
    if name in ("image_size", "patch_size") and isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def check_config_bounds(config: Mapping[str, Any] | Any) -> None:
    """Raise ``ConfigBoundsError`` if a size field is not an integer in ``[1, bound]`` or the parameter count of
    the described encoder (about ``layers * (4 h^2 + 2 h i)``) exceeds :func:`max_parameters`."""
    for name, bound in FIELD_BOUNDS.items():
        value = _get(config, name)
        if value is None:
            continue
        for size in _sizes(name, value):
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= bound:
                raise ConfigBoundsError(
                    f"Configuration field {name}={size!r} is out of bounds: it must be an integer from 1 to {bound}. "
                    "The config.json is damaged or not a BEiT configuration."
                )
    layers, hidden = _get(config, "num_hidden_layers"), _get(config, "hidden_size")
    if isinstance(layers, int) and isinstance(hidden, int):
        intermediate = _get(config, "intermediate_size")
        intermediate = intermediate if isinstance(intermediate, int) else 4 * hidden
        parameters = layers * (4 * hidden * hidden + 2 * hidden * intermediate)
        if parameters > max_parameters():
            raise ConfigBoundsError(
                f"The configuration describes about {parameters:.2e} parameters ({layers} layers of width {hidden}), "
                f"more than the limit of {max_parameters():.2e}; set HF_BEIT_MAX_PARAMETERS to build it anyway."
            )
