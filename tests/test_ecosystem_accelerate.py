"""accelerate's offloading works on hf_beit: ``cpu_offload``, ``device_map`` with disk offload, no split blocks."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import random_pixels, randomize_, tiny_config

import hf_beit
from hf_beit.acceleration import record_kernels

accelerate = pytest.importorskip("accelerate")

TASKS = {
    "classification": (hf_beit.BeitForImageClassification, {"use_relative_position_bias": True}),
    "mim": (hf_beit.BeitForMaskedImageModeling, {"use_shared_relative_position_bias": True, "use_mask_token": True}),
}


def _model(task: str):
    cls, overrides = TASKS[task]
    return randomize_(cls(tiny_config(**overrides))).eval()


def _logits(model, task: str, pixels):
    extra = {"bool_masked_pos": torch.arange(16).repeat(len(pixels), 1) % 3 == 0} if task == "mim" else {}
    with torch.no_grad(), record_kernels(model) as kernels:
        return model(pixel_values=pixels, **extra).logits, kernels.kernels


@pytest.mark.parametrize("task", sorted(TASKS))
def test_cpu_offload_gives_the_same_outputs(task):
    model, pixels = _model(task), random_pixels()
    expected, _ = _logits(model, task, pixels)
    offloaded = accelerate.cpu_offload(copy.deepcopy(model), execution_device="cpu")
    assert any(p.device.type == "meta" for p in offloaded.parameters())  # weights really left the model
    logits, kernels = _logits(offloaded, task, pixels)
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=1e-6)
    assert kernels["beit.encoder.layer.0.output.dense"] == "module call (replaced forward)"


def test_device_map_with_disk_offload(tmp_path):
    model, pixels = _model("classification"), random_pixels()
    expected, _ = _logits(model, "classification", pixels)
    model.save_pretrained(tmp_path / "repo")
    device_map = {
        "beit.embeddings": "cpu",
        "beit.encoder.layer.0": "cpu",
        "beit.encoder.layer.1": "disk",
        "beit.encoder.layer.2": "disk",
        "beit.encoder.layer.3": "cpu",
        "beit.layernorm": "cpu",
        "beit.pooler": "cpu",
        "classifier": "disk",
    }
    loaded = hf_beit.BeitForImageClassification.from_pretrained(
        tmp_path / "repo", device_map=device_map, offload_folder=tmp_path / "offload"
    )
    # disk-mapped weights stay out of memory (read from the safetensors file at each call)
    assert loaded.beit.encoder.layer[1].output.dense.weight.device.type == "meta"
    assert loaded.classifier.weight.device.type == "meta"
    logits, _ = _logits(loaded, "classification", pixels)
    torch.testing.assert_close(logits, expected, atol=1e-6, rtol=1e-6)


def test_auto_device_map_never_splits_a_block():
    model = _model("classification")
    block_bytes = sum(p.numel() * p.element_size() for p in model.beit.encoder.layer[0].parameters())
    device_map = accelerate.infer_auto_device_map(
        model,
        max_memory={"cpu": int(2.5 * block_bytes), "disk": 10**9},
        no_split_module_classes=model._no_split_modules,
    )
    assert "disk" in device_map.values()
    for name in device_map:
        assert ".encoder.layer." not in name or name.count(".") == 3, f"block split at {name}"
