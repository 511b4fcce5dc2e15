"""Let a model without relative-position tables be traced with a symbolic patch grid.

``BeitModel`` compares the input's patch grid with the configured ``embeddings.window_size`` (to refuse a new
resolution without ``interpolate_pos_encoding``, and to skip resizing absolute positions at the configured one).
With a symbolic grid each comparison becomes a guard: ``torch.export`` then either specialises the resolution or
adds a runtime assertion that the grid is (or is not) the traced one. On the export copy the window is replaced by
an equal tuple that compares unequal to every grid, so the traced graph always resizes the absolute positions;
bicubic resizing to the same size is the identity (weights 0, 1, 0, 0), so outputs at the configured resolution
are unchanged (tested).

This can go once ``modeling_beit`` skips those comparisons while exporting (``torch.compiler.is_exporting()``).
"""

from __future__ import annotations

from torch import nn


class _AnyGridDiffers(tuple):
    """A ``(rows, cols)`` window that is never equal to a patch grid (it stays a normal tuple otherwise)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = tuple.__hash__


def trace_any_grid(encoder: nn.Module) -> None:
    """Make ``encoder`` (a ``BeitModel`` copy used only for export) take the resizing path for every grid."""
    embeddings = encoder.embeddings
    embeddings.window_size = _AnyGridDiffers(embeddings.window_size)
