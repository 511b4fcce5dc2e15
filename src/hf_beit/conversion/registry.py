"""Registry of the released checkpoints of every family (BEiT v1 and v2, DiT, data2vec-vision).

Each entry names its family (:mod:`.families`); the entries themselves live in :mod:`.releases`, one module per
family.
"""

from __future__ import annotations

from .errors import ConversionError
from .release_entry import Metric, ReleasedCheckpoint
from .releases import all_entries

__all__ = ["RELEASED_CHECKPOINTS", "Metric", "ReleasedCheckpoint", "get_released_checkpoint"]

RELEASED_CHECKPOINTS: dict[str, ReleasedCheckpoint] = {entry.name: entry for entry in all_entries()}


def get_released_checkpoint(name: str) -> ReleasedCheckpoint:
    """Find an entry by original file stem (``beit_base_patch16_224_pt22k``), repo name (``beit-base-patch16-224``)
    or Hub id (``facebook/data2vec-vision-base-ft1k``)."""
    stem = name.removesuffix(".pth").split("/")[-1]
    for entry in RELEASED_CHECKPOINTS.values():
        if stem in (entry.name, entry.repo_name) or name == entry.hub_equivalent:
            return entry
    known = ", ".join(sorted(RELEASED_CHECKPOINTS))
    raise ConversionError(f"Unknown released checkpoint {name!r}. Known names: {known}.")
