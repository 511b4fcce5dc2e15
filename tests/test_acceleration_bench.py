"""Helpers of benchmarks/bench_model.py: the hf_beit -> timm weight mapping and the FLOP count."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from conftest import TINY, random_pixels, randomize_

import hf_beit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))

from _peers import to_timm
from _report import forward_flops


def test_timm_mapping_gives_the_same_logits():
    config = hf_beit.BeitConfig(**{**TINY, "use_relative_position_bias": True, "use_mean_pooling": True})
    ours = randomize_(hf_beit.BeitForImageClassification(config)).eval()
    theirs = to_timm(ours)
    pixels = random_pixels()
    with torch.no_grad():
        torch.testing.assert_close(theirs(pixels), ours(pixel_values=pixels).logits, atol=1e-5, rtol=0)


def test_timm_mapping_rejects_layouts_it_cannot_express():
    config = hf_beit.BeitConfig(**{**TINY, "use_absolute_position_embeddings": True})
    with pytest.raises(ValueError, match="per-layer relative-bias"):
        to_timm(hf_beit.BeitForImageClassification(config))


def test_beit_base_forward_is_17_6_giga_multiply_adds_per_image():
    config = hf_beit.BeitConfig.from_preset("beit-base-patch16-224", num_labels=1000)
    # 12 blocks x (197 x 768 x (4 x 768 + 2 x 3072) + 2 x 197^2 x 768) + patch embedding + head
    by_hand = 12 * (197 * 768 * 9216 + 2 * 197**2 * 768) + 196 * 768 * 768 + 768 * 1000
    assert forward_flops(config, 2) == 2 * 2 * by_hand
    assert round(by_hand / 1e9, 1) == 17.6
