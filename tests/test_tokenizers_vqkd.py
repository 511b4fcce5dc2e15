"""BEiT v2's VQ-KD tokenizer: the released file layout loads safely and encodes like an independent re-implementation
of unilm's VQ-KD encode (ViT encoder -> fc_norm on patch tokens -> task layer -> l2-normalised nearest codebook
entry by cosine); it plugs into `hf-beit pretrain` through the tokenizer interface."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
import torch.nn.functional as F
from test_conversion_reference import _layer_norm, _ln, encoder, make_backbone

from hf_beit.cli import main
from hf_beit.conversion import CheckpointError
from hf_beit.pretraining import PretrainingOptions, run_pretraining
from hf_beit.pretraining.data import load_digits_images
from hf_beit.tokenizers import VQKDTokenizer, load_visual_tokenizer, load_vqkd_tokenizer

HEADS, DIM, CODES, CODE_DIM = 4, 32, 64, 8


def make_vqkd_checkpoint(seed: int = 0) -> dict:
    """unilm VQKD state dict layout (as saved by run_vqkd_training.py), tiny: 32-px views, 8-px patches."""
    torch.manual_seed(seed)
    encoder_sd = make_backbone(dim=DIM, depth=2, heads=HEADS, window=4, patch=8, abs_pos=True, per_layer=False,
                               layer_scale=False, with_index=False) | _layer_norm("fc_norm", DIM)
    decoder_sd = make_backbone(dim=DIM, depth=1, heads=HEADS, window=4, patch=1, abs_pos=True, per_layer=False,
                               layer_scale=False, with_index=False)
    codebook = F.normalize(torch.randn(CODES, CODE_DIM), dim=-1)  # the EMA update keeps entries on the sphere
    sd = {f"encoder.{k}": v for k, v in encoder_sd.items()} | {f"decoder.{k}": v for k, v in decoder_sd.items()}
    sd |= {
        "encode_task_layer.0.weight": torch.randn(DIM, DIM) * 0.2, "encode_task_layer.0.bias": torch.randn(DIM) * 0.1,
        "encode_task_layer.2.weight": torch.randn(CODE_DIM, DIM),
        "encode_task_layer.2.bias": torch.randn(CODE_DIM) * 0.1,
        "decode_task_layer.0.weight": torch.randn(DIM, DIM), "decode_task_layer.2.weight": torch.randn(512, DIM),
        "quantize.embedding.weight": codebook, "quantize.embedding.embed_avg": codebook.clone(),
        "quantize.embedding.cluster_size": torch.rand(CODES), "quantize.embedding.initted": torch.tensor([1.0]),
        "quantize.cluster_size": torch.rand(CODES),
    }
    return sd


def reference_codes(sd: dict, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(l2-normalised features, code ids) of unilm's VQKD.get_codebook_indices for [0, 1] images."""
    enc = {k.removeprefix("encoder."): v for k, v in sd.items() if k.startswith("encoder.")}
    x = images * 255.0 / 127.5 - 1.0  # pre_process, process_type "default"
    tokens = _ln(enc, "fc_norm", encoder(enc, x, HEADS)[-1][:, 1:])
    hidden = torch.tanh(F.linear(tokens, sd["encode_task_layer.0.weight"], sd["encode_task_layer.0.bias"]))
    z = F.linear(hidden, sd["encode_task_layer.2.weight"], sd["encode_task_layer.2.bias"])
    z = z / z.norm(dim=-1, keepdim=True)
    codebook = sd["quantize.embedding.weight"]
    cosine = z @ (codebook / codebook.norm(dim=-1, keepdim=True)).T
    return z, cosine.argmax(-1)


@pytest.fixture
def released_file(tmp_path):
    sd = make_vqkd_checkpoint()
    path = tmp_path / "vqkd_encoder_tiny.pth"
    torch.save({"model": sd, "epoch": 99}, path)
    return path, sd


def test_released_layout_encodes_like_the_reference(released_file):
    path, sd = released_file
    tokenizer = load_vqkd_tokenizer(path, num_attention_heads=HEADS)
    assert (tokenizer.vocab_size, tokenizer.image_size, tokenizer.downsample, tokenizer.token_grid) == (
        64, 32, 8, (4, 4)
    )
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    features, expected = reference_codes(sd, images)
    actual = tokenizer.get_codebook_indices(tokenizer.preprocess(images))
    assert actual.shape == (6, 16) and torch.equal(actual, expected)
    assert (tokenizer.encode(tokenizer.preprocess(images)) - features).abs().max() <= 1e-5
    assert len(expected.unique()) > 8  # the codes are spread: a wrong feature would change many of them


def test_save_and_reload_through_the_tokenizer_interface(released_file, tmp_path):
    path, _ = released_file
    tokenizer = load_vqkd_tokenizer(path, num_attention_heads=HEADS)
    tokenizer.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())["tokenizer_type"] == "vqkd"
    reloaded = load_visual_tokenizer(tmp_path / "saved")
    images = torch.rand(2, 3, 32, 32)
    assert isinstance(reloaded, VQKDTokenizer) and reloaded.view_interpolation == "bicubic"
    assert torch.equal(reloaded.get_codebook_indices(images), tokenizer.get_codebook_indices(images))


def test_unsafe_or_foreign_files_are_refused(released_file, tmp_path):
    _, sd = released_file

    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    unsafe = tmp_path / "unsafe.pth"
    with open(unsafe, "wb") as handle:
        pickle.dump({"model": Payload()}, handle, protocol=2)
    with pytest.raises(CheckpointError):
        load_vqkd_tokenizer(unsafe)
    extra = tmp_path / "extra.pth"
    torch.save({"model": sd | {"mystery.weight": torch.zeros(1)}}, extra)
    with pytest.raises(ValueError, match="not part of a VQ-KD tokenizer"):
        load_vqkd_tokenizer(extra, num_attention_heads=HEADS)


def test_pretraining_with_vqkd_targets(released_file, tmp_path):
    path, _ = released_file
    tokenizer = load_vqkd_tokenizer(path, num_attention_heads=HEADS)
    images, _ = load_digits_images(32)
    options = PretrainingOptions(
        output_dir=str(tmp_path / "mim"), max_steps=2, batch_size=4, logging_steps=1, save_steps=1000,
        warmup_steps=1, disable_tqdm=True,
        model_overrides={"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "intermediate_size": 64},
    )
    summary = run_pretraining(images[:16], options, tokenizer=tokenizer)
    assert summary["tokenizer_type"] == "vqkd" and summary["vocab_size"] == 64 and summary["global_step"] == 2
    assert summary["tokenizer_image_size"] == 32
    saved = load_visual_tokenizer(tmp_path / "mim" / "visual_tokenizer")
    assert isinstance(saved, VQKDTokenizer)


def test_pretrain_command_takes_a_vqkd_tokenizer(released_file, tmp_path, capsys):
    path, _ = released_file
    load_vqkd_tokenizer(path, num_attention_heads=HEADS).save_pretrained(tmp_path / "vqkd")
    argv = ["pretrain", "--dataset", "digits", "--output-dir", str(tmp_path / "out"), "--max-steps", "1",
            "--tokenizer", "vqkd", "--tokenizer-path", str(tmp_path / "vqkd"), "--image-size", "32",
            "--patch-size", "8", "--hidden-size", "32", "--num-hidden-layers", "1", "--num-attention-heads", "2",
            "--intermediate-size", "64", "--batch-size", "4", "--warmup-steps", "1", "--logging-steps", "1"]
    assert main(argv) == 0 and "Pre-trained 1 steps" in capsys.readouterr().out
