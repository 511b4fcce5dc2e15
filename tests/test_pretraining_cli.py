"""`hf-beit pretrain` end to end on tiny models: k-means on digits, and a (tiny, random) DALL-E encoder file."""

from __future__ import annotations

import json

import attr
import pytest
import torch

from hf_beit import BeitForMaskedImageModeling
from hf_beit.cli import main
from hf_beit.tokenizers import DalleEncoder, KMeansPatchTokenizer, load_visual_tokenizer

TINY_ARGS = [
    "--image-size", "32", "--patch-size", "8", "--hidden-size", "32", "--num-hidden-layers", "2",
    "--num-attention-heads", "2", "--intermediate-size", "64", "--batch-size", "8", "--warmup-steps", "1",
    "--logging-steps", "1", "--save-steps", "1000", "--num-workers", "0",
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_pretrain_digits_with_kmeans(tmp_path, capsys):
    out = tmp_path / "mim"
    argv = ["pretrain", "--dataset", "digits", "--output-dir", str(out), "--max-steps", "3", "--kmeans-vocab-size",
            "16", "--kmeans-fit-images", "64", "--kmeans-steps", "5", *TINY_ARGS]
    assert main(argv) == 0
    assert "Pre-trained 3 steps" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "preprocessor_config.json", "pretraining_config.json", "visual_tokenizer"
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mim")]  # no temp folders left behind
    model = BeitForMaskedImageModeling.from_pretrained(out)
    assert model.config.vocab_size == 16 and model.config.use_mask_token and model.config.drop_path_rate == 0.1
    tokenizer = load_visual_tokenizer(out / "visual_tokenizer")
    assert isinstance(tokenizer, KMeansPatchTokenizer) and tokenizer.token_grid == (4, 4)
    settings = json.loads((out / "pretraining_config.json").read_text())
    assert settings["global_step"] == 3 and len(settings["losses"]) == 3
    assert settings["num_masking_patches"] == 6 and settings["tokenizer_image_size"] == 16
    capsys.readouterr()
    assert main(argv) == 2  # a user mistake: one message on stderr, exit code 2 (command_errors)
    assert "hf-beit pretrain: error: Output folder" in capsys.readouterr().err


def test_pretrain_image_folder_with_dall_e_pickle(tmp_path, capsys):
    dall_e = pytest.importorskip("dall_e")
    from PIL import Image

    data = tmp_path / "images"
    data.mkdir()
    generator = torch.Generator().manual_seed(0)
    for index in range(4):
        pixels = (torch.rand(40, 48, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(data / f"{index}.png")
    torch.manual_seed(0)
    with attr.validators.disabled():
        encoder = dall_e.Encoder(n_hid=16, n_blk_per_group=1, vocab_size=64)
    torch.save(encoder, tmp_path / "encoder.pkl")
    out = tmp_path / "mim"
    argv = ["pretrain", "--data-dir", str(data), "--output-dir", str(out), "--tokenizer", "dalle",
            "--tokenizer-path", str(tmp_path / "encoder.pkl"), "--max-steps", "2", *TINY_ARGS]
    assert main(argv) == 2
    assert "trust_pickle" in capsys.readouterr().err
    assert main([*argv, "--trust-pickle"]) == 0
    tokenizer = load_visual_tokenizer(out / "visual_tokenizer")
    assert isinstance(tokenizer, DalleEncoder) and tokenizer.vocab_size == 64
    settings = json.loads((out / "pretraining_config.json").read_text())
    assert settings["tokenizer_image_size"] == 32 and settings["tokenizer_type"] == "dall_e"
    assert BeitForMaskedImageModeling.from_pretrained(out).config.vocab_size == 64


def test_pretrain_argument_errors(tmp_path, capsys):
    assert main(["pretrain", "--output-dir", str(tmp_path / "o"), *TINY_ARGS]) == 2
    assert "hf-beit pretrain: error: --data-dir is required" in capsys.readouterr().err
    assert main(["pretrain", "--dataset", "digits", "--tokenizer", "dalle", "--output-dir", str(tmp_path / "o"),
                 *TINY_ARGS]) == 2
    assert "needs --tokenizer-path" in capsys.readouterr().err


def test_pretrain_checks_every_image_and_the_output_before_training(tmp_path, capsys):
    from PIL import Image

    data = tmp_path / "images"
    data.mkdir()
    for index in range(3):
        Image.new("RGB", (20, 20), (index * 60, 0, 0)).save(data / f"{index}.png")
    (data / "broken.png").write_bytes(b"not a png")
    argv = ["pretrain", "--data-dir", str(data), "--output-dir", str(tmp_path / "mim"), "--max-steps", "50",
            *TINY_ARGS]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "1 of 4 images under" in error and "broken.png" in error
    assert not (tmp_path / "mim").exists() and not (tmp_path / "mim.checkpoints").exists()
    (tmp_path / "file").write_text("x")
    assert main([*argv[:3], "--output-dir", str(tmp_path / "file"), *argv[5:]]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
