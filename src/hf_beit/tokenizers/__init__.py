"""Visual tokenizers for BEiT masked image modeling (targets of the pre-training loss)."""

from hf_beit.tokenizers.base import VisualTokenizer, load_visual_tokenizer
from hf_beit.tokenizers.dalle import DalleEncoder, load_dalle_encoder, map_pixels, unmap_pixels
from hf_beit.tokenizers.kmeans import KMeansPatchTokenizer

__all__ = [
    "DalleEncoder",
    "KMeansPatchTokenizer",
    "VisualTokenizer",
    "load_dalle_encoder",
    "load_visual_tokenizer",
    "map_pixels",
    "unmap_pixels",
]
