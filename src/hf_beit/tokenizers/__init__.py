"""Visual tokenizers for BEiT masked image modeling (targets of the pre-training loss)."""

from hf_beit.tokenizers.base import VisualTokenizer, load_visual_tokenizer
from hf_beit.tokenizers.dalle import DalleEncoder, load_dalle_encoder, map_pixels, unmap_pixels
from hf_beit.tokenizers.kmeans import KMeansPatchTokenizer
from hf_beit.tokenizers.vqkd import VQKDTokenizer, load_vqkd_tokenizer

__all__ = [
    "DalleEncoder",
    "KMeansPatchTokenizer",
    "VQKDTokenizer",
    "VisualTokenizer",
    "load_dalle_encoder",
    "load_visual_tokenizer",
    "load_vqkd_tokenizer",
    "map_pixels",
    "unmap_pixels",
]
