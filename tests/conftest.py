"""Shared fixtures: tiny BEiT configurations and fully random weights (so every code path does real work)."""

from __future__ import annotations

import os

import pytest
import torch

import hf_beit


def _share_the_cores_between_workers() -> None:
    """Under pytest-xdist each worker, and every process it starts (notebook kernels, CLI runs), gets an equal share
    of the cores: with PyTorch's default threads in both workers a notebook ran 4.5x slower (220 s vs 48 s)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


_share_the_cores_between_workers()

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "image_size": 32,
    "patch_size": 8,
    "num_labels": 3,
    "vocab_size": 50,
    "layer_norm_eps": 1e-6,
    "drop_path_rate": 0.0,
}


def tiny_config(**overrides) -> hf_beit.BeitConfig:
    """A 4-layer, 32-wide BEiT on 32x32 images (4x4 patch grid)."""
    return hf_beit.BeitConfig(**{**TINY, **overrides})


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BatchNorm statistic non-trivial random values (tables, layer scale, norms too)."""
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if not tensor.is_floating_point():
            continue
        noise = torch.randn(tensor.shape, generator=generator)
        if name.endswith("running_var"):
            tensor.copy_(1.0 + 0.5 * noise.abs())
        elif ("norm" in name.split(".")[-2] and name.endswith("weight")) or name.endswith(".bn.weight"):
            tensor.copy_(1.0 + 0.1 * noise)
        else:
            tensor.copy_(0.1 * noise)
    return model


def random_pixels(batch: int = 2, size: int = 32, seed: int = 1, channels: int = 3) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def stock_twin(model: torch.nn.Module, directory, **kwargs) -> torch.nn.Module:
    """Stock transformers' model of the same class with ``model``'s weights (through a saved repo), in eval mode."""
    import transformers

    model.save_pretrained(directory)
    stock_class = getattr(transformers, type(model).__name__)
    return stock_class.from_pretrained(directory, **kwargs).eval()


# hf_beit's (classic) linear names -> stock transformers 5.x names, inside one block.
STOCK_LINEAR_NAMES = {
    "attention.attention.query": "attention.q_proj",
    "attention.attention.key": "attention.k_proj",
    "attention.attention.value": "attention.v_proj",
    "attention.output.dense": "attention.o_proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}


def stock_name(name: str) -> str:
    """Translate an hf_beit module/parameter path (``beit.encoder.layer.3.attention.attention.query...``) to stock's."""
    prefix, marker, rest = name.partition("encoder.layer.")
    if not marker:
        return name
    index, _, inner = rest.partition(".")
    for ours, theirs in STOCK_LINEAR_NAMES.items():
        if inner == ours or inner.startswith(ours + "."):
            inner = theirs + inner[len(ours):]
            break
    return f"{prefix}layers.{index}.{inner}"


@pytest.fixture
def fake_hub():
    """``(endpoint, calls)`` of a local fake Hub (tests/fake_hub.py) for push tests."""
    from fake_hub import running_fake_hub

    with running_fake_hub() as hub:
        yield hub
