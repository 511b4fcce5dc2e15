"""The DALL-E encoder reproduces OpenAI's `dall_e.Encoder` (same random weights) and loads/saves safely."""

from __future__ import annotations

import json

import attr
import pytest
import torch
from safetensors.torch import save_file

from hf_beit.tokenizers import DalleEncoder, VisualTokenizer, load_dalle_encoder, load_visual_tokenizer, map_pixels
from hf_beit.tokenizers.dalle import convert_dall_e_state_dict, unmap_pixels

dall_e = pytest.importorskip("dall_e")


def _reference(n_hid: int, n_blk_per_group: int, vocab_size: int, seed: int = 0):
    torch.manual_seed(seed)
    with attr.validators.disabled():  # dall_e refuses n_hid < 64 / vocab < 512; the maths does not care
        encoder = dall_e.Encoder(n_hid=n_hid, n_blk_per_group=n_blk_per_group, vocab_size=vocab_size)
    with torch.no_grad():  # dall_e initialises biases to zero: randomise them so that they are tested too
        for name, param in encoder.named_parameters():
            if name.endswith(".b"):
                param.normal_(std=0.1)
    return encoder.eval()


@pytest.mark.parametrize("n_hid,n_blk,vocab,size", [(16, 1, 64, 32), (64, 2, 512, 24)])
def test_logits_and_indices_equal_dall_e_encoder(n_hid, n_blk, vocab, size):
    reference = _reference(n_hid, n_blk, vocab)
    encoder = DalleEncoder.from_dall_e_state_dict(reference.state_dict(), image_size=size)
    assert encoder.get_config()["n_hid"] == n_hid and encoder.vocab_size == vocab
    assert encoder.token_grid == (size // 8, size // 8)
    pixels = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    inputs = encoder.preprocess(pixels)
    torch.testing.assert_close(inputs, dall_e.map_pixels(pixels), rtol=0, atol=0)
    with torch.no_grad():
        expected = reference(dall_e.map_pixels(pixels))
        logits = encoder(inputs)
    assert logits.shape == (3, vocab, size // 8, size // 8)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
    indices = encoder.get_codebook_indices(inputs)
    assert indices.dtype == torch.long and indices.shape == (3, (size // 8) ** 2)
    assert torch.equal(indices, expected.argmax(1).flatten(1))
    # The token ids vary over the image: the test exercises more than a constant output.
    assert indices.unique().numel() > 1


def test_default_architecture_matches_openai_release():
    with torch.device("meta"):
        ours = DalleEncoder()
        reference = dall_e.Encoder(device=torch.device("meta"))
    converted, config = convert_dall_e_state_dict(reference.state_dict())
    assert config == {"n_hid": 256, "input_channels": 3, "vocab_size": 8192, "group_count": 4, "n_blk_per_group": 2}
    ours_shapes = {name: tuple(t.shape) for name, t in ours.state_dict().items()}
    assert ours_shapes == {name: tuple(t.shape) for name, t in converted.items()}
    assert ours.downsample == 8 and ours.token_grid == (14, 14)
    assert ours_shapes["output_conv.weight"] == (8192, 2048, 1, 1)


def test_map_pixels():
    x = torch.rand(2, 3, 4, 4)
    mapped = map_pixels(x)
    assert mapped.min() >= 0.1 and mapped.max() <= 0.9
    torch.testing.assert_close(map_pixels(torch.ones(1, 1, 1, 1)), torch.full((1, 1, 1, 1), 0.9))
    torch.testing.assert_close(unmap_pixels(mapped), x)
    with pytest.raises(ValueError, match="4-D"):
        map_pixels(torch.rand(3, 4, 4))
    with pytest.raises(TypeError, match="float"):
        map_pixels(torch.zeros(1, 3, 4, 4, dtype=torch.uint8))


def test_loading_pickled_module_state_dict_and_safetensors(tmp_path):
    reference = _reference(16, 1, 64, seed=3)
    pixels = map_pixels(torch.rand(2, 3, 16, 16))
    expected = reference(pixels).argmax(1).flatten(1)

    pickled = tmp_path / "encoder.pkl"
    torch.save(reference, pickled)  # a whole pickled module, like OpenAI's encoder.pkl
    with pytest.raises(ValueError, match="trust_pickle=True"):
        load_dalle_encoder(pickled)
    assert torch.equal(load_dalle_encoder(pickled, trust_pickle=True).get_codebook_indices(pixels), expected)

    state_file = tmp_path / "encoder_state.pt"
    torch.save(reference.state_dict(), state_file)
    assert torch.equal(load_dalle_encoder(state_file).get_codebook_indices(pixels), expected)

    safetensors_file = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(safetensors_file))
    assert torch.equal(load_dalle_encoder(safetensors_file).get_codebook_indices(pixels), expected)


def test_save_pretrained_round_trip(tmp_path):
    encoder = DalleEncoder.from_dall_e_state_dict(_reference(16, 1, 64, seed=5).state_dict(), image_size=16)
    encoder.save_pretrained(tmp_path / "tok")
    config = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    assert config["tokenizer_type"] == "dall_e" and config["image_size"] == 16
    assert (tmp_path / "tok" / "model.safetensors").is_file()
    pixels = map_pixels(torch.rand(2, 3, 16, 16))
    for loaded in (load_visual_tokenizer(tmp_path / "tok"), load_dalle_encoder(tmp_path / "tok")):
        assert isinstance(loaded, DalleEncoder)
        torch.testing.assert_close(loaded(pixels), encoder(pixels), rtol=0, atol=0)
    assert isinstance(VisualTokenizer.from_pretrained(tmp_path / "tok"), DalleEncoder)


def test_bad_inputs_raise_clear_errors(tmp_path):
    encoder = DalleEncoder(n_hid=16, n_blk_per_group=1, vocab_size=64, image_size=16)
    with pytest.raises(ValueError, match=r"channels|shape"):
        encoder.get_codebook_indices(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="multiple"):
        encoder.get_codebook_indices(torch.rand(1, 3, 12, 12))
    with pytest.raises(ValueError, match=r"Not a dall_e\.Encoder"):
        DalleEncoder.from_dall_e_state_dict({"blocks.input.conv.w": torch.zeros(1)})
    with pytest.raises(FileNotFoundError):
        load_dalle_encoder(tmp_path / "missing.pkl")
    with pytest.raises(FileNotFoundError, match="not a saved visual tokenizer"):
        load_visual_tokenizer(tmp_path)
