"""hf_beit.acceleration: packed oneDNN / bf16 / int8 linears against plain F.linear, caching and autograd."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hf_beit.acceleration import (
    UsesFusedLinears,
    bf16_available,
    clear_packed_weights,
    concatenated_parameters,
    fused_linear,
    inference_precision,
    int8_engine,
    onednn_available,
    optimize_for_inference,
)

needs_onednn = pytest.mark.skipif(not onednn_available(), reason="PyTorch build without oneDNN")
needs_bf16 = pytest.mark.skipif(not bf16_available(), reason="CPU without native bf16 GEMMs")
needs_int8 = pytest.mark.skipif(int8_engine() is None, reason="no quantised engine")


def _qkv(dim: int = 48) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
    """q/k/v projections as in BEiT: the key has no bias."""
    return nn.Linear(dim, dim), nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim)


def _reference(x: torch.Tensor, linears) -> torch.Tensor:
    """Each module applied on its own, outputs concatenated (independent of concatenated_parameters)."""
    return torch.cat([linear(x) for linear in linears], dim=-1)


class _Owner(UsesFusedLinears, nn.Module):
    """A module that runs its GEMMs through fused_linear, like hf_beit's attention and MLP modules."""


def _owner(precision: str) -> _Owner:
    owner = _Owner()
    owner.inference_precision = precision
    return owner


def _packed(module: nn.Module) -> bool:
    return any(m.__dict__.get("_packed_weights") for m in module.modules())


@needs_onednn
@torch.no_grad()
def test_fp32_packed_matches_separate_linears_and_is_cached():
    linears = _qkv()
    x = torch.randn(3, 7, 48)
    out = fused_linear(x, linears)
    assert out.shape == (3, 7, 144) and out.dtype == torch.float32
    torch.testing.assert_close(out, _reference(x, linears), atol=1e-5, rtol=1e-5)
    (cached,) = linears[0]._packed_weights.values()
    fused_linear(x, linears)
    assert list(linears[0]._packed_weights.values()) == [cached]  # no repacking


@needs_onednn
@pytest.mark.parametrize(
    ("activation", "function"),
    [
        ("gelu", F.gelu),
        ("gelu_pytorch_tanh", lambda t: F.gelu(t, approximate="tanh")),
        ("relu", F.relu),
        ("silu", F.silu),
    ],
)
@torch.no_grad()
def test_activation_matches_pytorch(activation, function):
    linear = nn.Linear(32, 64)
    x = torch.randn(5, 32)
    torch.testing.assert_close(fused_linear(x, linear, activation), function(linear(x)), atol=1e-5, rtol=1e-5)


@needs_onednn
@torch.no_grad()
def test_weight_changes_invalidate_the_packed_copy():
    linears = _qkv()
    x = torch.randn(4, 48)
    fused_linear(x, linears)
    linears[1].weight.mul_(-2.0)  # in-place update (what an optimizer step does)
    torch.testing.assert_close(fused_linear(x, linears), _reference(x, linears), atol=1e-5, rtol=1e-5)
    model = nn.Sequential(nn.Linear(48, 48))
    fused_linear(x, model[0])
    model.load_state_dict({"0.weight": torch.randn(48, 48), "0.bias": torch.randn(48)})
    torch.testing.assert_close(fused_linear(x, model[0]), model[0](x), atol=1e-5, rtol=1e-5)
    model[0].weight = nn.Parameter(torch.randn(48, 48))  # replaced tensor: new storage
    torch.testing.assert_close(fused_linear(x, model[0]), model[0](x), atol=1e-5, rtol=1e-5)


def test_training_uses_autograd_and_gives_exact_gradients():
    torch.manual_seed(0)
    linears = _qkv()
    twins = copy.deepcopy(linears)
    x = torch.randn(2, 5, 48, requires_grad=True)
    x_twin = x.detach().clone().requires_grad_()
    fused_linear(x, linears, "gelu").square().sum().backward()
    F.gelu(_reference(x_twin, twins)).square().sum().backward()
    assert not _packed(linears[0])  # nothing packed while autograd is on
    torch.testing.assert_close(x.grad, x_twin.grad, atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(linears, twins):
        torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, atol=1e-5, rtol=1e-5)


def test_concatenated_parameters_fill_missing_biases_with_zeros():
    q, k, v = _qkv(4)
    weight, bias = concatenated_parameters((q, k, v))
    assert weight.shape == (12, 4)
    torch.testing.assert_close(bias, torch.cat([q.bias, torch.zeros(4), v.bias]))
    assert concatenated_parameters((nn.Linear(4, 2, bias=False),) * 2)[1] is None


@needs_bf16
@torch.no_grad()
def test_bf16_precision_and_autocast_select_bf16_kernels():
    linears = _qkv(64)
    x = torch.randn(6, 64)
    expected = _reference(x, linears)
    out = fused_linear(x, linears, owner=_owner("bf16"))
    assert out.dtype == torch.bfloat16
    assert (out.float() - expected).abs().max() < 0.03 * expected.abs().max()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fused_linear(x, linears, owner=_owner("fp32")).dtype == torch.bfloat16


@needs_int8
@torch.no_grad()
def test_int8_is_close_to_fp32():
    torch.manual_seed(0)
    linear = nn.Linear(128, 256)
    x = torch.randn(16, 128)
    out, expected = fused_linear(x, linear, "gelu", owner=_owner("int8")), F.gelu(linear(x))
    assert out.dtype == torch.float32
    assert (out - expected).norm() / expected.norm() < 0.02


def test_optimize_for_inference_api():
    model = nn.Sequential(nn.Linear(8, 8), _Owner(), nn.Linear(8, 2)).train()
    names = list(model.state_dict())
    assert inference_precision(model) == "fp32"
    assert optimize_for_inference(model, "none") is model and not model.training
    assert inference_precision(model) == model[1].inference_precision == "none"
    assert "inference_precision='none'" in repr(model)
    assert list(model.state_dict()) == names
    with pytest.raises(ValueError, match="precision must be one of"):
        optimize_for_inference(model, "fp16")


@needs_onednn
def test_packed_models_copy_and_pickle_without_their_caches():
    model = optimize_for_inference(nn.Sequential(nn.Linear(8, 8)), "fp32")
    x = torch.randn(2, 8)
    with torch.no_grad():
        fused_linear(x, model[0])
    assert _packed(model)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert not clone[0]._packed_weights
        with torch.no_grad():
            torch.testing.assert_close(fused_linear(x, clone[0]), model[0](x), atol=1e-5, rtol=1e-5)
    clear_packed_weights(model)
    assert not _packed(model)


def test_compiles_without_graph_breaks():
    linears = _qkv(16)
    compiled = torch.compile(lambda t: fused_linear(t, linears, "gelu"), backend="eager", fullgraph=True)
    x = torch.randn(3, 16)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), F.gelu(_reference(x, linears)), atol=1e-5, rtol=1e-5)
