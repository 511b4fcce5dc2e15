"""Argument types for the ``hf-beit`` commands: a number out of range is argparse's one-line error (exit code 2)
before any work, not a failure deep inside training."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(kind: type, check: Callable[[float], bool], wanted: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not (math.isfinite(value) and check(value)):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = wanted  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda value: value >= 1, "a whole number >= 1")
non_negative_int = _number(int, lambda value: value >= 0, "a whole number >= 0")
positive_float = _number(float, lambda value: value > 0, "a number > 0")
non_negative_float = _number(float, lambda value: value >= 0, "a number >= 0")
below_one = _number(float, lambda value: 0 <= value < 1, "a number from 0 up to (not including) 1")
