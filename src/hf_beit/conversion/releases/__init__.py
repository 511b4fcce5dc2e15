"""The released checkpoints of every family, one module per family (see :mod:`..registry`)."""

from __future__ import annotations

from ..release_entry import ReleasedCheckpoint
from . import beit, beitv2, data2vec, dit


def all_entries() -> list[ReleasedCheckpoint]:
    """Every registry entry, family by family."""
    return [*beit.entries(), *beitv2.entries(), *dit.entries(), *data2vec.entries()]
