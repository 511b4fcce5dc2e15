"""Tools that hook, prune, parametrise or replace linear layers act on hf_beit exactly as on stock transformers.

Each test applies the same tool to hf_beit and to stock ``transformers`` BEiT with the same weights (matching
linears through ``conftest.stock_name``) and compares outputs; ``record_kernels`` shows the fast path stepping
aside for the touched modules and coming back when they are plain again.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from conftest import random_pixels, randomize_, stock_name, stock_twin, tiny_config
from torch import nn
from torch.nn.utils import parametrize, prune

import hf_beit
from hf_beit.acceleration import record_kernels

QUERY = "beit.encoder.layer.1.attention.attention.query"
MLP_OUT = "beit.encoder.layer.2.output.dense"


@pytest.fixture
def pair(tmp_path):
    """(hf_beit classifier, stock transformers classifier) with the same random weights."""
    ours = randomize_(hf_beit.BeitForImageClassification(tiny_config(use_relative_position_bias=True))).eval()
    return ours, stock_twin(ours, tmp_path)


def _logits(model, pixels):
    with torch.no_grad(), record_kernels(model) as kernels:
        return model(pixel_values=pixels).logits, kernels.kernels


def test_forward_hooks_fire_and_output_changing_hooks_take_effect(pair):
    ours, stock = pair
    pixels = random_pixels()
    baseline, _ = _logits(ours, pixels)
    calls = []
    handles = []
    for model in (ours, stock):
        def double_output(module, args, output):
            calls.append(module)
            return 2.0 * output

        def negate_input(module, args):
            return (-args[0],)

        handles.append(model.get_submodule(_name(model, QUERY)).register_forward_hook(double_output))
        handles.append(model.get_submodule(_name(model, MLP_OUT)).register_forward_pre_hook(negate_input))
    hooked, kernels = _logits(ours, pixels)
    expected, _ = _logits(stock, pixels)
    assert len(calls) == 2  # one call of the hooked query in each model
    assert (hooked - baseline).abs().max() > 1e-3
    torch.testing.assert_close(hooked, expected, atol=1e-5, rtol=1e-5)
    assert kernels["beit.encoder.layer.1.attention.attention.{query,key,value}"] == "module call (module hooks)"
    assert kernels["beit.encoder.layer.0.attention.attention.{query,key,value}"].startswith("oneDNN packed")
    for handle in handles:
        handle.remove()
    restored, kernels = _logits(ours, pixels)
    torch.testing.assert_close(restored, baseline, atol=1e-6, rtol=1e-6)
    assert all("module call" not in kernel for kernel in kernels.values())


def test_global_module_hooks_see_every_linear(pair):
    ours, _ = pair
    seen = []

    def note(module, args, output):
        if isinstance(module, nn.Linear):
            seen.append(module)

    handle = nn.modules.module.register_module_forward_hook(note)
    try:
        _, kernels = _logits(ours, random_pixels())
    finally:
        handle.remove()
    linears = [m for m in ours.modules() if isinstance(m, nn.Linear)]
    assert len(seen) == len(linears) and set(map(id, seen)) == set(map(id, linears))
    assert all(kernel.startswith("module call") for path, kernel in kernels.items() if "softmax" not in path)


def test_pruning_masks_apply(pair):
    ours, stock = pair
    for model in (ours, stock):
        for name in (QUERY, MLP_OUT):
            prune.l1_unstructured(model.get_submodule(_name(model, name)), "weight", amount=0.5)
    pruned, kernels = _logits(ours, random_pixels())
    expected, _ = _logits(stock, random_pixels())
    torch.testing.assert_close(pruned, expected, atol=1e-5, rtol=1e-5)
    assert kernels[MLP_OUT] == "module call (module hooks)"


def test_parametrized_linears_are_called_as_modules(pair):
    ours, stock = pair

    class Halve(nn.Module):
        def forward(self, weight):
            return 0.5 * weight

    for model in (ours, stock):
        parametrize.register_parametrization(model.get_submodule(_name(model, QUERY)), "weight", Halve())
    logits, kernels = _logits(ours, random_pixels())
    expected, _ = _logits(stock, random_pixels())
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert kernels["beit.encoder.layer.1.attention.attention.{query,key,value}"].startswith("module call (torch.")


def test_torch_dynamic_quantisation_replaces_linears_like_on_stock(pair):
    ours, stock = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated upstream but still shipped
        quantised = [torch.ao.quantization.quantize_dynamic(copy.deepcopy(m), {nn.Linear}) for m in (ours, stock)]
    logits, kernels = _logits(quantised[0], random_pixels())
    expected, _ = _logits(quantised[1], random_pixels())
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert "quantized.dynamic" in kernels[MLP_OUT]


def test_torchao_weight_only_int8_like_on_stock(pair):
    torchao = pytest.importorskip("torchao.quantization")
    ours, stock = pair
    for model in (ours, stock):
        torchao.quantize_(model, torchao.Int8WeightOnlyConfig())
    logits, kernels = _logits(ours, random_pixels())
    expected, _ = _logits(stock, random_pixels())
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert kernels[MLP_OUT].startswith("module call (weight of type")


def test_functional_call_with_substituted_weights(pair):
    """``torch.func.functional_call`` swaps parameters for plain tensors: the result must use the substitutes."""
    ours, stock = pair
    pixels = random_pixels()
    ours_params = {name: 0.5 * p.detach() for name, p in ours.named_parameters() if name.startswith(QUERY)}
    stock_params = {stock_name(name): tensor for name, tensor in ours_params.items()}
    with torch.no_grad():
        logits = torch.func.functional_call(ours, ours_params, (pixels,)).logits
        expected = torch.func.functional_call(stock, stock_params, (pixels,)).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def _name(model, ours_name: str) -> str:
    return ours_name if isinstance(model, hf_beit.BeitPreTrainedModel) else stock_name(ours_name)
