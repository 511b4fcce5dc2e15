"""Embedding extraction and attention-map visualisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from PIL import Image
from test_inference_utils import random_image, tiny_classifier, tiny_config, tiny_processor

import hf_beit
from hf_beit.inference.attention_pictures import AttentionMaps, attention_maps
from hf_beit.inference.embeddings import extract_embeddings


@pytest.fixture(scope="module")
def images():
    return [random_image(40, 30, seed=i) for i in range(5)]


def _encoder_outputs(encoder, images):
    with torch.no_grad():
        return encoder(**tiny_processor()(images=images, return_tensors="pt"))


def test_pooling_modes_match_the_encoder(images):
    model = tiny_classifier()  # use_mean_pooling=True: "mean" is what the classifier sees
    outputs = _encoder_outputs(model.beit, images)
    mean = extract_embeddings(model, tiny_processor(), images, pooling="mean", batch_size=2)
    torch.testing.assert_close(mean, outputs.pooler_output, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the classifier applied to the "mean" embedding reproduces the model's logits
        logits = model(**tiny_processor()(images=images, return_tensors="pt")).logits
    torch.testing.assert_close(model.classifier(mean), logits, rtol=1e-5, atol=1e-5)
    cls = extract_embeddings(model, tiny_processor(), images, pooling="cls", batch_size=3)
    torch.testing.assert_close(cls, outputs.last_hidden_state[:, 0], rtol=1e-5, atol=1e-5)
    patches = extract_embeddings(model, tiny_processor(), images, pooling="none")
    assert patches.shape == (5, 16, 32)  # 32 px / patch 8 = 4x4 grid, hidden 32
    torch.testing.assert_close(patches, outputs.last_hidden_state[:, 1:], rtol=1e-5, atol=1e-5)


def test_mean_pooling_without_pooler_averages_patch_tokens(images):
    torch.manual_seed(0)
    encoder = hf_beit.BeitModel(tiny_config(num_hidden_layers=2, use_mean_pooling=False)).eval()
    tokens = _encoder_outputs(encoder, images).last_hidden_state
    mean = extract_embeddings(encoder, tiny_processor(), images, pooling="mean")
    torch.testing.assert_close(mean, tokens[:, 1:].mean(dim=1), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="pooling must be one of"):
        extract_embeddings(encoder, tiny_processor(), images, pooling="max")


def test_attention_maps_match_stock_transformers_eager(tmp_path):
    model = tiny_classifier()
    model.save_pretrained(tmp_path / "model")
    reference = transformers.BeitForImageClassification.from_pretrained(tmp_path / "model",
                                                                        attn_implementation="eager").eval()
    image = random_image(40, 30, seed=9)
    with torch.no_grad():
        attentions = reference(**tiny_processor()(images=image, return_tensors="pt"), output_attentions=True).attentions
    for layer in (0, -1):
        maps = attention_maps(model, tiny_processor(), image, layer=layer)
        assert maps.maps.shape == (4, 4, 4) and maps.layer == layer % 2
        expected = attentions[layer][0, :, 0, 1:].reshape(4, 4, 4)
        torch.testing.assert_close(maps.maps, expected, rtol=1e-4, atol=1e-5)
    assert (maps.maps.sum(dim=(1, 2)) < 1).all()  # the CLS key takes the remaining attention
    with pytest.raises(ValueError, match="layer must be in"):
        attention_maps(model, tiny_processor(), image, layer=2)


def test_attention_maps_switch_stock_sdpa_model_to_eager_and_back(tmp_path):
    model = tiny_classifier()
    model.save_pretrained(tmp_path / "model")
    stock = transformers.BeitForImageClassification.from_pretrained(tmp_path / "model").eval()
    assert stock.config._attn_implementation == "sdpa"
    image = random_image(seed=4)
    maps = attention_maps(stock, tiny_processor(), image)
    assert stock.config._attn_implementation == "sdpa"
    torch.testing.assert_close(maps.maps, attention_maps(model, tiny_processor(), image).maps, rtol=1e-4, atol=1e-5)


def test_attention_sheet_png(tmp_path):
    maps = attention_maps(tiny_classifier(), tiny_processor(), random_image(40, 30, seed=2))
    path = maps.save(tmp_path / "att" / "maps.png")
    sheet = np.asarray(Image.open(path).convert("RGB")).astype(int)
    tile, band = 32, 32 + 14  # the model's 32x32 view, then a caption band of 14 px
    assert sheet.shape == (2 * band, 3 * tile + 48, 3)  # view + 4 heads in a 3-column grid, colour scale on the right
    assert np.array_equal(sheet[:tile, :tile], np.asarray(maps.image))  # first tile: what the model saw
    heads = [sheet[y * band:y * band + tile, x * tile:(x + 1) * tile] for y, x in [(0, 1), (0, 2), (1, 0)]]
    assert len({h.tobytes() for h in heads}) == 3  # every head draws its own map
    assert (sheet[tile:band, :3 * tile] < 128).any()  # captions are written under the tiles
    scale = sheet[14:-14, 3 * tile + 6]
    assert scale[0].sum() > scale[len(scale) // 2].sum() > scale[-1].sum()  # bright (max) on top, dark (min) below
    assert sorted(p.name for p in (tmp_path / "att").iterdir()) == ["maps.png"]


def test_maps_lie_on_the_crop_the_model_saw(tmp_path):
    """A wide photo centre-cropped by the processor: the maps are drawn on that crop, not on the stretched photo."""
    processor = hf_beit.BeitImageProcessor(size={"shortest_edge": 32}, do_center_crop=True, crop_size=32)
    photo = random_image(64, 32, seed=5)
    photo.save(tmp_path / "photo.png")
    maps = attention_maps(tiny_classifier(), processor, str(tmp_path / "photo.png"))  # a file path works too
    assert np.array_equal(np.asarray(maps.image), np.asarray(photo.crop((16, 0, 48, 32))))
    peaked = torch.zeros(1, 4, 4)
    peaked[0, 1, 2] = 1.0  # all attention on patch (row 1, column 2)
    heat = np.asarray(AttentionMaps(peaked, maps.image, 0).overlays(alpha=1.0)[0])
    bright = np.argwhere(heat.sum(-1) == heat.sum(-1).max())
    assert (
        bright[:, 0].min() == 8 and bright[:, 0].max() == 15 and bright[:, 1].min() == 16 and bright[:, 1].max() == 23
    )
