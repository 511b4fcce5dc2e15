"""Behaviour of the hf_beit models beyond plain transformers parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from conftest import TINY, random_pixels, randomize_, tiny_config
from scipy.interpolate import RectBivariateSpline

import hf_beit
from hf_beit.relative_position import geometric_resize_matrix, resize_relative_position_table


def test_segmentation_taps_blocks_after_out_indices(tmp_path):
    """Ours with out_indices [0,1,2,3] == stock with [2,3,4,5]: stock reads hidden_states[i-1], we read block i."""
    config = dict(TINY, num_hidden_layers=6, use_relative_position_bias=True)
    ours = randomize_(hf_beit.BeitForSemanticSegmentation(hf_beit.BeitConfig(**config, out_indices=[0, 1, 2, 3])))
    ours.eval().save_pretrained(tmp_path)
    # Stock refuses our segmentation config.json (it would take other features without a word) ...
    with pytest.raises(ValueError, match="out_features and out_indices should correspond"):
        transformers.BeitForSemanticSegmentation.from_pretrained(tmp_path)
    # ... so the reference is built from the same numbers spelled in stock's meaning, with the saved weights.
    stock_config = transformers.BeitConfig(**config, out_indices=[2, 3, 4, 5])
    stock, info = transformers.BeitForSemanticSegmentation.from_pretrained(
        tmp_path, config=stock_config, output_loading_info=True)
    stock.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    pixels, labels = random_pixels(), torch.randint(0, 3, (2, 32, 32))
    labels[0, :4] = 255  # ignored pixels
    with torch.no_grad():
        mine, theirs = ours(pixels, labels=labels), stock(pixel_values=pixels, labels=labels)
    assert mine.logits.shape == (2, 3, 16, 16)  # 1/4 of the input resolution
    torch.testing.assert_close(mine.logits, theirs.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(mine.loss, theirs.loss, atol=1e-5, rtol=0)
    # The last block can be tapped (impossible in stock transformers) and changes the logits.
    ours.config.out_indices = [0, 1, 2, 5]
    with torch.no_grad():
        assert not torch.allclose(ours(pixels).logits, mine.logits)


def test_segmentation_rejects_bad_out_indices():
    with pytest.raises(ValueError, match="0-based block index below 4"):
        hf_beit.BeitForSemanticSegmentation(tiny_config(out_indices=[1, 2, 3, 4]))


def test_wrong_resolution_needs_interpolate_pos_encoding():
    model = hf_beit.BeitModel(tiny_config(use_relative_position_bias=True)).eval()
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(random_pixels(size=48))
    assert model(random_pixels(size=48), interpolate_pos_encoding=True).last_hidden_state.shape == (2, 37, 32)
    with pytest.raises(ValueError, match="pixel_values of shape"):
        model(torch.zeros(1, 1, 32, 32))


def test_absolute_positions_interpolate_like_stock(tmp_path):
    ours = randomize_(hf_beit.BeitModel(tiny_config(use_absolute_position_embeddings=True))).eval()
    ours.save_pretrained(tmp_path)
    stock = transformers.BeitModel.from_pretrained(tmp_path).eval()
    pixels = random_pixels(size=48)
    with torch.no_grad():
        mine = ours(pixels, interpolate_pos_encoding=True).last_hidden_state
        theirs = stock(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def _scipy_geometric_reference(grid: np.ndarray, src_side: int, dst_side: int) -> np.ndarray:
    """unilm's recipe written independently: bisection for q, geometric axis, bicubic spline per head."""
    left, right = 1.01, 1.5
    while right - left > 1e-6:
        q = (left + right) / 2
        if sum(q**i for i in range(src_side // 2)) > dst_side // 2:
            right = q
        else:
            left = q
    dis, cur = [], 1.0
    for i in range(src_side // 2):
        dis.append(cur)
        cur += q ** (i + 1)
    axis = np.array([-d for d in reversed(dis)] + [0.0] + dis)
    target = np.arange(-(dst_side // 2), dst_side // 2 + 0.1, 1.0)
    heads = [
        RectBivariateSpline(axis, axis, grid[:, :, h], kx=3, ky=3, s=0)(target, target) for h in range(grid.shape[2])
    ]
    return np.stack(heads, axis=-1)


@pytest.mark.parametrize("src_window,dst_window", [((14, 14), (24, 24)), ((14, 14), (40, 40)), ((4, 4), (6, 6))])
def test_relative_table_resize_matches_unilm_recipe(src_window, dst_window):
    src_side, dst_side = 2 * src_window[0] - 1, 2 * dst_window[0] - 1
    table = torch.randn(src_side * src_side + 3, 2, dtype=torch.float64)
    resized = resize_relative_position_table(table, src_window, dst_window)
    assert resized.shape == (dst_side * dst_side + 3, 2)
    torch.testing.assert_close(resized[-3:], table[-3:])  # CLS rows copied
    expected = _scipy_geometric_reference(table[:-3].reshape(src_side, src_side, 2).numpy(), src_side, dst_side)
    np.testing.assert_allclose(resized[:-3].reshape(dst_side, dst_side, 2).numpy(), expected, atol=1e-8)


def test_resize_matrix_identity_and_shrink():
    assert torch.equal(geometric_resize_matrix(7, 7), torch.eye(7, dtype=torch.float64))
    shrink = geometric_resize_matrix(11, 7)
    assert shrink.shape == (7, 11)
    torch.testing.assert_close(shrink.sum(1), torch.ones(7, dtype=torch.float64))  # interpolation keeps constants


def test_model_bias_at_new_resolution_uses_geometric_resize():
    model = randomize_(hf_beit.BeitModel(tiny_config(use_relative_position_bias=True))).eval()
    module = model.encoder.layer[0].attention.attention.relative_position_bias
    with torch.no_grad():
        bias = module((6, 6))
    table = resize_relative_position_table(module.relative_position_bias_table.detach(), (4, 4), (6, 6))
    # token (0,0)->(0,1) is offset (0,-1); row = (0+5)*11 + (-1+5); token 1 and 2 are patches (0,0), (0,1)
    torch.testing.assert_close(bias[:, 1, 2], table[5 * 11 + 4])
    torch.testing.assert_close(bias[:, 0, 5], table[-3])  # cls -> token
    torch.testing.assert_close(bias[:, 5, 0], table[-2])  # token -> cls
    torch.testing.assert_close(bias[:, 0, 0], table[-1])  # cls -> cls


def test_cached_bias_and_qkv_follow_weight_updates():
    model = randomize_(hf_beit.BeitForImageClassification(tiny_config(use_relative_position_bias=True))).eval()
    pixels = random_pixels()
    with torch.no_grad():
        before = model(pixels).logits
        model(pixels)  # served from the caches
        table = model.beit.encoder.layer[0].attention.attention.relative_position_bias.relative_position_bias_table
        table.add_(torch.randn_like(table))
        after_table = model(pixels).logits
        model.beit.encoder.layer[1].attention.attention.key.weight.mul_(2.0)
        after_key = model(pixels).logits
    assert not torch.allclose(before, after_table) and not torch.allclose(after_table, after_key)
    fresh = hf_beit.BeitForImageClassification(model.config).eval()
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(pixels).logits, after_key)


def test_gradient_checkpointing_gives_same_gradients():
    config = tiny_config(use_relative_position_bias=True, use_shared_relative_position_bias=True)
    model = randomize_(hf_beit.BeitForImageClassification(config)).train()
    pixels, labels = random_pixels(), torch.tensor([0, 2])

    def grads():
        model.zero_grad()
        model(pixels, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    model.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.beit.encoder.layer)
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys() and len(plain) == len(list(model.parameters()))
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5)


def test_problem_types_match_torch_losses_without_mutating_config():
    model = randomize_(hf_beit.BeitForImageClassification(tiny_config())).eval()
    pixels = random_pixels()
    logits = model(pixels).logits
    single = torch.tensor([2, 0])
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(model(pixels, labels=single).loss, torch.nn.functional.cross_entropy(logits, single))
    torch.testing.assert_close(
        model(pixels, labels=multi).loss, torch.nn.functional.binary_cross_entropy_with_logits(logits, multi)
    )
    assert model.config.problem_type is None
    regression = randomize_(hf_beit.BeitForImageClassification(tiny_config(num_labels=1))).eval()
    target = torch.tensor([0.5, -1.0])
    out = regression(pixels, labels=target)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), target))


def test_mim_labels_masked_only_or_full_grid():
    model = randomize_(
        hf_beit.BeitForMaskedImageModeling(tiny_config(use_shared_relative_position_bias=True, use_mask_token=True))
    )
    pixels = random_pixels()
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, [1, 5]] = True
    mask[1, [0, 7, 9]] = True
    tokens = torch.randint(0, 50, (2, 16))
    out = model(pixels, bool_masked_pos=mask, labels=tokens[mask])
    assert out.logits.shape == (2, 16, 50)
    expected = torch.nn.functional.cross_entropy(out.logits[mask], tokens[mask])
    torch.testing.assert_close(out.loss, expected)
    full = torch.where(mask, tokens, torch.full_like(tokens, -100))
    torch.testing.assert_close(model(pixels, bool_masked_pos=mask, labels=full).loss, expected)
    with pytest.raises(ValueError, match="one id per masked patch"):
        model(pixels, bool_masked_pos=mask, labels=tokens[0])
    # masked positions really see the mask token: changing masked pixels does not change their logits... much
    assert not torch.allclose(model(pixels).logits, out.logits)


def test_tuple_outputs_and_shapes():
    model = hf_beit.BeitModel(tiny_config(use_relative_position_bias=True)).eval()
    last, pooled = model(random_pixels(), return_dict=False)
    assert last.shape == (2, 17, 32) and pooled.shape == (2, 32)
    headless = hf_beit.BeitForImageClassification(tiny_config(num_labels=0)).eval()
    assert headless(random_pixels()).logits.shape == (2, 32)


def test_initialisation_follows_unilm():
    model = hf_beit.BeitForImageClassification(
        tiny_config(use_relative_position_bias=True, layer_scale_init_value=0.25)
    )
    layer = model.beit.encoder.layer[2]
    assert torch.all(layer.lambda_1 == 0.25) and torch.all(layer.lambda_2 == 0.25)
    assert torch.all(layer.attention.attention.relative_position_bias.relative_position_bias_table == 0)
    assert torch.all(model.beit.embeddings.cls_token.abs() > 0)
    # depth rescaling of the residual output projections (fix_init_weight): layer 2 scaled by 1/sqrt(6)
    std0 = model.beit.encoder.layer[0].output.dense.weight.detach().std()
    std3 = model.beit.encoder.layer[3].output.dense.weight.detach().std()
    assert 1.6 < float(std0 / std3) < 3.4  # expected ratio sqrt(8)/sqrt(2) = 2


def test_presets():
    base = hf_beit.BeitConfig.from_preset("beit-base-patch16-384")
    assert base.window_size == (24, 24) and base.layer_norm_eps == 1e-6 and base.use_relative_position_bias
    large = hf_beit.BeitConfig.from_preset("beit-large-patch16-640", num_labels=5)
    assert large.out_indices == [7, 11, 15, 23] and large.num_labels == 5 and large.hidden_size == 1024
    with pytest.raises(KeyError, match="Available presets"):
        hf_beit.BeitConfig.from_preset("beit-huge")
    model = hf_beit.BeitForImageClassification(hf_beit.BeitConfig.from_preset("beit-base-patch16-224"))
    table = model.beit.encoder.layer[0].attention.attention.relative_position_bias.relative_position_bias_table
    assert table.shape == (732, 12)
