"""What stock transformers does with a segmentation repo's ``out_indices``: the one sentence the cards (converted
and fine-tuned) and conversion notes use.

Verified on transformers 5.24: ``BeitForSemanticSegmentation`` feeds UPerNet ``hidden_states[i - 1]`` for each
``i`` in ``out_indices``, and ``hidden_states[0]`` is the embedding output, so it taps the output of 0-based block
``i - 2`` where hf_beit (and unilm/mmseg) tap block ``i`` (tests/test_conversion_cards.py checks this).
"""

from __future__ import annotations

from collections.abc import Sequence

#: How many blocks before hf_beit's tap stock transformers reads for the same ``out_indices`` number.
STOCK_TAP_SHIFT = 2
_EARLIER = {1: "one block earlier", 2: "two blocks earlier"}[STOCK_TAP_SHIFT]


def stock_taps_note(taps: Sequence[int]) -> str:
    """The Limitations sentence of a segmentation card whose UPerNet taps are the 0-based blocks ``taps``."""
    return (
        f"UPerNet features are taken after 0-based blocks {list(taps)} as in the original mmseg model. Stock "
        f"transformers' segmentation model would read the same `out_indices` {_EARLIER} and give other masks "
        "without a word, so it refuses this repo's config.json on purpose (`out_features and out_indices should "
        "correspond`): load it with hf_beit."
    )


def stock_taps_phrase() -> str:
    """The short form for a conversion note about ``out_indices``."""
    return f"transformers taps {_EARLIER} for the same numbers"


def card_library(task: str) -> str:
    """The ``library_name`` of a card: ``hf_beit`` for segmentation repos (stock transformers refuses their
    config.json, see :func:`stock_taps_note`), ``transformers`` for the others, which stock loads unchanged."""
    return "hf_beit" if task == "segmentation" else "transformers"
