"""What transformers' common model tests check, for hf_beit's classes: config, initialisation of every parameter and
buffer (meta device included), ``dtype=`` loading, run-time attention switching, output capture with index
selection, sharded safetensors, and Trainer's gradient accumulation. References: stock transformers' BEiT on the
same weights, and values derived by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import transformers
from conftest import TINY, random_pixels, randomize_, stock_twin, tiny_config
from packaging import version
from transformers import AttentionInterface

import hf_beit
from hf_beit.acceleration import record_kernels

SEGMENTATION = {"use_relative_position_bias": True, "out_indices": [0, 1, 2, 3], "pool_scales": [1, 2]}
MODELS = {
    "base": (hf_beit.BeitModel, {"use_relative_position_bias": True}),
    "classification": (hf_beit.BeitForImageClassification, {"use_relative_position_bias": True}),
    "mim": (hf_beit.BeitForMaskedImageModeling, {"use_shared_relative_position_bias": True, "use_mask_token": True}),
    "segmentation": (hf_beit.BeitForSemanticSegmentation, {**SEGMENTATION, "auxiliary_channels": 8}),
}


def _config(task: str) -> hf_beit.BeitConfig:
    return tiny_config(**MODELS[task][1])


def _inputs(task: str, batch: int = 2) -> dict:
    inputs = {"pixel_values": random_pixels(batch)}
    if task == "mim":
        inputs["bool_masked_pos"] = torch.arange(16).repeat(batch, 1) % 3 == 0
    return inputs


def _main_output(task: str, outputs) -> torch.Tensor:
    return outputs.last_hidden_state if task == "base" else outputs.logits


# -- configuration -------------------------------------------------------------------------------------------------


def test_config_accepts_any_width_and_the_model_names_the_problem():
    config = hf_beit.BeitConfig(hidden_size=37)  # 12 heads by default: checked when a model is built, as in stock
    assert config.hidden_size == 37
    with pytest.raises(ValueError, match=r"hidden_size \(37\) must be a multiple of num_attention_heads \(12\)"):
        hf_beit.BeitModel(config)


def test_config_serialisation_round_trips(tmp_path):
    config = tiny_config(num_labels=5, id2label={i: f"c{i}" for i in range(5)}, output_hidden_states=True)
    assert hf_beit.BeitConfig.from_dict(json.loads(config.to_json_string())).to_dict() == config.to_dict()
    config.save_pretrained(tmp_path / "sub" / "folder")
    loaded = hf_beit.BeitConfig.from_pretrained(tmp_path / "sub", subfolder="folder")
    assert loaded.to_dict() == config.to_dict() and loaded.id2label[4] == "c4"
    loaded.num_labels = 3
    assert len(loaded.id2label) == 3 and len(loaded.label2id) == 3
    assert hf_beit.BeitConfig().to_dict().keys() == transformers.BeitConfig().to_dict().keys()


def test_common_config_arguments_are_honoured():
    config = tiny_config(return_dict=False, output_hidden_states=True, output_attentions=True, dtype="bfloat16")
    assert config.dtype == torch.bfloat16
    model = hf_beit.BeitForImageClassification(config).eval()
    with torch.no_grad():
        logits, hidden_states, attentions = model(random_pixels())
    assert logits.shape == (2, TINY["num_labels"])
    assert len(hidden_states) == TINY["num_hidden_layers"] + 1 and len(attentions) == TINY["num_hidden_layers"]


# -- initialisation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(MODELS))
def test_meta_device_init_recreates_every_buffer(task):
    cls = MODELS[task][0]
    reference = cls(_config(task))
    with torch.device("meta"):
        model = cls(_config(task))
    model.to_empty(device="cpu")
    for buffer in model.buffers():
        buffer.fill_(7)  # to_empty leaves garbage; make sure init_weights really rewrites it
    model.init_weights()
    buffers = dict(model.named_buffers())
    assert buffers.keys() == dict(reference.named_buffers()).keys()
    for name, expected in reference.named_buffers():
        torch.testing.assert_close(buffers[name], expected, atol=0, rtol=0, msg=name)


@pytest.fixture
def seeded_init(monkeypatch):
    """Make every random initialiser draw from a generator seeded by its call number, like transformers' tests."""
    from transformers import initialization

    calls = []
    for name, function in list(initialization.TORCH_INIT_FUNCTIONS.items()):
        def seeded(tensor, *args, _function=function, **kwargs):
            kwargs.pop("generator", None)
            calls.append(1)
            return _function(tensor, *args, generator=torch.Generator().manual_seed(len(calls)), **kwargs)

        if "generator" in function.__code__.co_varnames:
            monkeypatch.setitem(initialization.TORCH_INIT_FUNCTIONS, name, seeded)
    return calls


@pytest.mark.parametrize("task", sorted(MODELS))
def test_every_missing_weight_is_initialised_as_at_construction(task, seeded_init):
    cls = MODELS[task][0]
    constructed = cls(_config(task)).state_dict()
    seeded_init.clear()
    loaded = cls.from_pretrained(None, config=_config(task), state_dict={}).state_dict()
    assert loaded.keys() == constructed.keys()
    for name, tensor in loaded.items():
        assert tensor.device.type == "cpu", name
        torch.testing.assert_close(tensor, constructed[name], atol=0, rtol=0, msg=name)


def test_initial_weight_scales_follow_unilm():
    """trunc_normal(0.02) everywhere, the block output projections divided by sqrt(2 * (layer + 1))."""
    torch.manual_seed(0)
    model = hf_beit.BeitModel(tiny_config(hidden_size=128, intermediate_size=256, num_attention_heads=4))
    for index, block in enumerate(model.encoder.layer):
        assert block.attention.attention.query.weight.std().item() == pytest.approx(0.02, rel=0.05)
        for linear in (block.attention.output.dense, block.output.dense):
            assert linear.weight.std().item() == pytest.approx(0.02 / math.sqrt(2 * (index + 1)), rel=0.05)


def test_segmentation_from_a_backbone_checkpoint_gets_fresh_batchnorm_statistics(tmp_path):
    randomize_(hf_beit.BeitModel(_config("segmentation"))).save_pretrained(tmp_path)
    model = hf_beit.BeitForSemanticSegmentation.from_pretrained(tmp_path)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 10 + len(SEGMENTATION["pool_scales"])  # fpn1, psp, bottlenecks, laterals, fpn, auxiliary
    for norm in norms:
        torch.testing.assert_close(norm.running_mean, torch.zeros_like(norm.running_mean), atol=0, rtol=0)
        torch.testing.assert_close(norm.running_var, torch.ones_like(norm.running_var), atol=0, rtol=0)
        assert norm.num_batches_tracked.item() == 0


# -- loading -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(MODELS))
def test_dtype_loading_runs_in_bf16(tmp_path, task):
    cls = MODELS[task][0]
    model = randomize_(cls(_config(task))).eval()
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        expected = _main_output(task, model(**_inputs(task)))
        output = _main_output(task, loaded(**_inputs(task)))
    assert output.dtype == torch.bfloat16
    assert (output.float() - expected).abs().max() <= 0.1 * expected.abs().max()


def test_sharded_safetensors_load_in_both_packages(tmp_path):
    model = randomize_(hf_beit.BeitForImageClassification(_config("classification"))).eval()
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    pixels = random_pixels()
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
        ours = hf_beit.BeitForImageClassification.from_pretrained(tmp_path).eval()(pixel_values=pixels).logits
        stock = transformers.BeitForImageClassification.from_pretrained(tmp_path).eval()(pixel_values=pixels).logits
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)
    torch.testing.assert_close(stock, expected, atol=1e-5, rtol=1e-5)


# -- attention implementations -------------------------------------------------------------------------------------


def _attention_kernels(model, pixels) -> tuple[torch.Tensor, set[str]]:
    with torch.no_grad(), record_kernels(model) as record:
        logits = model(pixel_values=pixels).logits
    return logits, {kernel for path, kernel in record.kernels.items() if path.endswith("softmax")}


def test_set_attn_implementation_switches_at_run_time():
    model = randomize_(hf_beit.BeitForImageClassification(_config("classification"))).eval()
    pixels = random_pixels()
    sdpa, kernels = _attention_kernels(model, pixels)
    assert model.config._attn_implementation == "sdpa" and kernels == {"sdpa"}
    model.set_attn_implementation("eager")
    eager, kernels = _attention_kernels(model, pixels)
    assert model.config._attn_implementation == "eager" and kernels == {"eager"}
    torch.testing.assert_close(eager, sdpa, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="does not support Flash Attention"):
        model.set_attn_implementation("flash_attention_2")


def test_attention_functions_registered_with_transformers_are_used():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    calls = []

    def counting_sdpa(module, query, key, value, attention_mask, **kwargs):
        calls.append(query.shape)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("hf_beit_test_counting_sdpa", counting_sdpa)
    model = randomize_(hf_beit.BeitForImageClassification(_config("classification"))).eval()
    pixels = random_pixels()
    expected, _ = _attention_kernels(model, pixels)
    model.set_attn_implementation("hf_beit_test_counting_sdpa")
    logits, kernels = _attention_kernels(model, pixels)
    assert len(calls) == TINY["num_hidden_layers"] and calls[0] == (2, TINY["num_attention_heads"], 17, 8)
    assert kernels == {"hf_beit_test_counting_sdpa"}
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


# -- output capture ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("selection", [True, [-1, 2], [0], 3, [-5, 4]])
@pytest.mark.parametrize("task", ["base", "classification", "mim"])
def test_hidden_state_selection_matches_stock(tmp_path, task, selection):
    """transformers' meaning (an index or indices into the L+1 states, negative from the end, ``None`` elsewhere),
    checked on stock's full hidden states; and equal to stock's own selection where it has that meaning (5.23+:
    5.18 returns L states and ignores a single int)."""
    model = randomize_(MODELS[task][0](_config(task))).eval()
    stock = stock_twin(model, tmp_path)
    count = TINY["num_hidden_layers"] + 1
    chosen = set(range(count)) if selection is True else {i % count for i in np.atleast_1d(selection).tolist()}
    with torch.no_grad():
        ours = model(**_inputs(task), output_hidden_states=selection).hidden_states
        everything = stock(**_inputs(task), output_hidden_states=True).hidden_states
        theirs = stock(**_inputs(task), output_hidden_states=selection).hidden_states
    assert len(ours) == count
    assert [h is not None for h in ours] == [i in chosen for i in range(count)]
    for index in chosen:
        torch.testing.assert_close(ours[index], everything[index], atol=1e-5, rtol=1e-5)
    if version.parse(transformers.__version__) >= version.parse("5.23"):
        assert [h is None for h in ours] == [h is None for h in theirs]


def test_segmentation_hidden_state_selection():
    model = randomize_(hf_beit.BeitForSemanticSegmentation(_config("segmentation"))).eval()
    with torch.no_grad():
        everything = model(**_inputs("segmentation"), output_hidden_states=True).hidden_states
        selected = model(**_inputs("segmentation"), output_hidden_states=[-1, 1]).hidden_states
        nothing = model(**_inputs("segmentation")).hidden_states
    assert nothing is None
    assert [h is None for h in selected] == [True, False, True, True, False]
    torch.testing.assert_close(selected[1], everything[1])
    torch.testing.assert_close(selected[-1], everything[-1])


@pytest.mark.parametrize("task", ["base", "classification", "mim"])
def test_tuple_outputs_match_stock(tmp_path, task):
    model = randomize_(MODELS[task][0](_config(task))).eval()
    stock = stock_twin(model, tmp_path, attn_implementation="eager")
    with torch.no_grad():
        ours = model(**_inputs(task), output_hidden_states=True, output_attentions=True, return_dict=False)
        theirs = stock(**_inputs(task), output_hidden_states=True, output_attentions=True, return_dict=False)
    assert len(ours) == len(theirs)
    torch.testing.assert_close(ours[0], theirs[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[-1][-1], theirs[-1][-1], atol=1e-5, rtol=1e-5)  # last attention map


# -- training ------------------------------------------------------------------------------------------------------


def test_trainer_gradient_accumulation_matches_one_big_batch(tmp_path):
    """Two accumulated batches of 2 must give the same update as one batch of 4 (the loss is scaled once)."""
    from datasets import Dataset

    pixels = random_pixels(4)
    data = Dataset.from_dict({"pixel_values": pixels.numpy(), "labels": [0, 1, 2, 1]}).with_format("torch")
    updates = []
    for batch, steps in ((4, 1), (2, 2)):
        torch.manual_seed(0)
        model = randomize_(hf_beit.BeitForImageClassification(_config("classification")))
        before = model.classifier.weight.detach().clone()
        arguments = transformers.TrainingArguments(
            tmp_path / f"run{batch}", per_device_train_batch_size=batch, gradient_accumulation_steps=steps,
            max_steps=1, learning_rate=0.1, lr_scheduler_type="constant", optim="sgd", report_to=[],
            save_strategy="no", use_cpu=True, dataloader_drop_last=False, seed=0,
        )  # fmt: skip
        transformers.Trainer(model=model, args=arguments, train_dataset=data).train()
        updates.append(model.classifier.weight.detach() - before)
    assert updates[0].abs().max() > 1e-4
    torch.testing.assert_close(updates[1], updates[0], atol=1e-6, rtol=1e-4)
