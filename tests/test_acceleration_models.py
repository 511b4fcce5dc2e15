"""optimize_for_inference on the three hf_beit task models: fast paths are used, accurate, and training-safe."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import TINY, random_pixels, randomize_

import hf_beit
from hf_beit.acceleration import bf16_available, int8_engine, onednn_available, optimize_for_inference, record_kernels

pytestmark = pytest.mark.skipif(not onednn_available(), reason="PyTorch build without oneDNN")

SEGMENTATION = {"out_indices": [0, 1, 2, 3], "pool_scales": [1, 2], "auxiliary_channels": 8, "use_auxiliary_head": True}
TASKS = {
    "classification": (hf_beit.BeitForImageClassification, {"use_relative_position_bias": True}),
    "mim": (hf_beit.BeitForMaskedImageModeling, {"use_shared_relative_position_bias": True, "use_mask_token": True}),
    "segmentation": (hf_beit.BeitForSemanticSegmentation, {"use_relative_position_bias": True, **SEGMENTATION}),
}
# Largest |difference| allowed, relative to the largest |logit| of the plain fp32 path.
TOLERANCE = {"fp32": 1e-5, "bf16": 0.05, "int8": 0.1}
PRECISIONS = [
    "fp32",
    pytest.param("bf16", marks=pytest.mark.skipif(not bf16_available(), reason="no native bf16")),
    pytest.param("int8", marks=pytest.mark.skipif(int8_engine() is None, reason="no quantised engine")),
]


def _model(task: str) -> torch.nn.Module:
    cls, overrides = TASKS[task]
    return randomize_(cls(hf_beit.BeitConfig(**{**TINY, **overrides}))).eval()


def _logits(model: torch.nn.Module, task: str, pixels: torch.Tensor, kernels: dict | None = None) -> torch.Tensor:
    extra = {"bool_masked_pos": torch.arange(16).repeat(len(pixels), 1) % 3 == 0} if task == "mim" else {}
    # Stock transformers caches its relative-position index process-wide; built under inference_mode it breaks any
    # later training of a stock model, so stock models run under no_grad. hf_beit must survive inference_mode.
    stock = type(model).__module__.startswith("transformers.")
    with torch.no_grad() if stock else torch.inference_mode(), record_kernels(model) as record:
        logits = model(pixel_values=pixels, **extra).logits.float()
    if kernels is not None:
        kernels.update(record.kernels)
    return logits


def _packed_gemms(kernels: dict) -> int:
    return sum("packed" in kernel or "int8" in kernel for kernel in kernels.values())


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("task", sorted(TASKS))
def test_fast_paths_match_the_plain_path(task, precision):
    model, pixels = _model(task), random_pixels()
    plain, fast_kernels = {}, {}
    reference = _logits(optimize_for_inference(model, "none"), task, pixels, plain)
    assert set(plain.values()) >= {"F.linear (precision none)"} and _packed_gemms(plain) == 0
    fast = _logits(optimize_for_inference(model, precision), task, pixels, fast_kernels)
    # every block packs its fused qkv, output, intermediate and MLP-output GEMMs
    assert _packed_gemms(fast_kernels) == 4 * TINY["num_hidden_layers"]
    assert (fast - reference).abs().max() <= TOLERANCE[precision] * reference.abs().max()


def _stock_copy(ours: torch.nn.Module, directory) -> torch.nn.Module:
    """Stock transformers classifier with ``ours``'s current weights (through a saved repo)."""
    ours.save_pretrained(directory)
    return transformers.BeitForImageClassification.from_pretrained(directory, attn_implementation="sdpa")


def test_default_fp32_path_is_packed_and_matches_stock_transformers(tmp_path):
    ours = _model("classification")
    stock = _stock_copy(ours, tmp_path).eval()
    pixels = random_pixels()
    expected = _logits(stock, "classification", pixels)
    kernels = {}
    torch.testing.assert_close(_logits(ours, "classification", pixels, kernels), expected, atol=1e-5, rtol=0)
    assert _packed_gemms(kernels) > 0  # the default (no optimize_for_inference call) already uses packed kernels


def test_training_after_inference_stays_exact(tmp_path):
    """Same loss and SGD step as stock transformers; afterwards the packed path sees the updated weights."""
    ours = _model("classification")
    stock = _stock_copy(ours, tmp_path / "before")
    pixels, labels = random_pixels(), torch.tensor([0, 2])
    _logits(ours, "classification", pixels)  # packs the weights
    losses = []
    for model in (ours, stock):
        model.train()
        loss = model(pixel_values=pixels, labels=labels).loss
        loss.backward()
        torch.optim.SGD(model.parameters(), lr=0.5).step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    expected = _logits(stock.eval(), "classification", pixels)
    torch.testing.assert_close(_logits(ours.eval(), "classification", pixels), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_whole_forward_compiles_without_graph_breaks(task):
    """``fullgraph=True`` raises on any graph break; the traced forward takes the plain kernels and matches eager."""
    model, pixels = _model(task), random_pixels()
    extra = {"bool_masked_pos": torch.arange(16).repeat(len(pixels), 1) % 3 == 0} if task == "mim" else {}
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        expected = model(pixel_values=pixels, **extra).logits
        torch.testing.assert_close(compiled(pixel_values=pixels, **extra).logits, expected, atol=1e-5, rtol=1e-5)
