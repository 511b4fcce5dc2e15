"""PEFT LoRA on hf_beit behaves as on stock transformers' BEiT: same outputs, same gradients, merge, save/reload.

The reference is stock ``transformers.BeitForImageClassification`` with the same weights and the same adapter
weights (its linears are named ``q_proj``/``v_proj``/``fc1``...; ``conftest.stock_name`` maps our names to those).
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import random_pixels, randomize_, stock_name, stock_twin, tiny_config

import hf_beit
from hf_beit.acceleration import record_kernels

peft = pytest.importorskip("peft")

TARGETS = {  # hf_beit's target modules -> stock transformers' for the same linears
    "query_value": (["query", "value"], ["q_proj", "v_proj"]),
    "all_linear": ("all-linear", "all-linear"),
}


def _classifier() -> hf_beit.BeitForImageClassification:
    return randomize_(hf_beit.BeitForImageClassification(tiny_config(use_relative_position_bias=True))).eval()


def _lora(model, targets, seed: int = 0):
    torch.manual_seed(seed)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    return peft.get_peft_model(model, config)


def _adapter_weights(model) -> dict[str, torch.Tensor]:
    return {name: tensor for name, tensor in model.state_dict().items() if "lora_" in name}


def _lora_pair(tmp_path, target: str):
    """(ours + LoRA, stock + LoRA) with the same base weights and the same adapter weights."""
    ours_targets, stock_targets = TARGETS[target]
    base = _classifier()
    stock = _lora(stock_twin(base, tmp_path / "base"), stock_targets)
    ours = _lora(base, ours_targets)
    adapters = {stock_name(name): tensor for name, tensor in _adapter_weights(ours).items()}
    assert set(adapters) == set(_adapter_weights(stock))  # the same linears were adapted in both models
    stock.load_state_dict(adapters, strict=False)
    return ours, stock


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_lora_changes_outputs_exactly_as_on_stock_transformers(tmp_path, target):
    pixels = random_pixels()
    with torch.no_grad():
        base_logits = _classifier()(pixel_values=pixels).logits
    ours, stock = _lora_pair(tmp_path, target)
    with torch.no_grad():
        with ours.disable_adapter():
            torch.testing.assert_close(ours(pixel_values=pixels).logits, base_logits, atol=1e-5, rtol=1e-5)
        with record_kernels(ours) as kernels:
            logits = ours(pixel_values=pixels).logits
        expected = stock(pixel_values=pixels).logits
    assert (logits - base_logits).abs().max() > 1e-3  # the adapters do something
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert any("peft.tuners.lora" in kernel for kernel in kernels.kernels.values())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_lora_gradients_reach_only_the_adapters_and_equal_stock(tmp_path, target):
    ours, stock = _lora_pair(tmp_path, target)
    pixels, labels = random_pixels(), torch.tensor([0, 2])
    for model in (ours, stock):
        model.train()
        model(pixel_values=pixels, labels=labels).loss.backward()
    stock_grads = {name: p.grad for name, p in stock.named_parameters() if p.requires_grad}
    trained = {name: p for name, p in ours.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in name for name in trained)
    for name, parameter in trained.items():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        torch.testing.assert_close(parameter.grad, stock_grads[stock_name(name)], atol=1e-5, rtol=1e-4)


def test_lora_training_lowers_the_loss_and_leaves_the_base_untouched():
    base = _classifier()
    frozen = copy.deepcopy(base.state_dict())
    model = _lora(base, ["query", "value"]).train()
    pixels, labels = random_pixels(batch=8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(20):
        loss = model(pixel_values=pixels, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    for name, tensor in model.get_base_model().state_dict().items():
        if "lora_" not in name:
            torch.testing.assert_close(tensor, frozen[name.replace(".base_layer", "")], atol=0, rtol=0)


def test_merge_and_unload_gives_the_unmerged_outputs_and_the_fast_path_back():
    model = _lora(_classifier(), "all-linear").eval()
    pixels = random_pixels()
    with torch.no_grad():
        unmerged = model(pixel_values=pixels).logits
        merged_model = model.merge_and_unload()
        assert type(merged_model) is hf_beit.BeitForImageClassification
        with record_kernels(merged_model) as kernels:
            merged = merged_model(pixel_values=pixels).logits
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    assert not any("module call" in kernel for kernel in kernels.kernels.values())


def test_adapters_save_and_reload(tmp_path):
    base = _classifier()
    pristine = copy.deepcopy(base)
    model = _lora(base, ["query", "value"]).eval()
    model.save_pretrained(tmp_path)
    reloaded = peft.PeftModel.from_pretrained(pristine, tmp_path).eval()
    pixels = random_pixels()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=pixels).logits, model(pixel_values=pixels).logits)


def test_new_head_with_modules_to_save(tmp_path):
    """The usual image-classification LoRA recipe: a new label set, the head trained in full next to the adapters."""
    base = _classifier()
    base.save_pretrained(tmp_path / "base")
    relabelled = hf_beit.BeitForImageClassification.from_pretrained(
        tmp_path / "base", num_labels=5, ignore_mismatched_sizes=True
    )
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"])
    model = peft.get_peft_model(relabelled, config).train()
    loss = model(pixel_values=random_pixels(), labels=torch.tensor([4, 1])).loss
    loss.backward()
    trained = {name for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    assert any("classifier" in name for name in trained) and any("lora_A" in name for name in trained)
