"""Exceptions raised by the checkpoint converter."""

from __future__ import annotations


class ConversionError(ValueError):
    """A checkpoint cannot be converted as requested (unknown keys, incompatible task or shapes)."""


class CheckpointError(ConversionError):
    """A checkpoint file cannot be read safely, is damaged, or is not a BEiT checkpoint."""


class OutputExistsError(FileExistsError):
    """The output directory exists and is not empty (pass ``overwrite=True`` / ``--overwrite``)."""
