"""Bad checkpoints and outputs: clear errors, and no output (or temporary) directory left behind."""

from __future__ import annotations

import collections

import pytest
import torch
from test_conversion_reference import make_mim_checkpoint

from hf_beit.conversion import CheckpointError, ConversionError, OutputExistsError, convert_checkpoint
from hf_beit.conversion import writer as writer_module
from hf_beit.conversion.cli import main


class _Untrusted:
    """A class that weights_only loading must refuse."""


def _convert(checkpoint, output, **kwargs):
    return convert_checkpoint(checkpoint, output, progress=False, log=lambda message: None, **kwargs)


def _assert_nothing_written(tmp_path, output):
    assert not output.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{output.name}")]


@pytest.fixture
def valid_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "valid.pth"
    torch.save({"model": make_mim_checkpoint(depth=2)}, path)
    return path


def test_truncated_checkpoint(tmp_path, valid_checkpoint):
    broken = tmp_path / "truncated.pth"
    broken.write_bytes(valid_checkpoint.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated"):
        _convert(broken, tmp_path / "out")
    _assert_nothing_written(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("content", [b"", b"\x00not a checkpoint" * 20])
def test_corrupt_or_empty_checkpoint(tmp_path, content):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"empty|not a valid PyTorch checkpoint|truncated"):
        _convert(path, tmp_path / "out")
    _assert_nothing_written(tmp_path, tmp_path / "out")


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "unsafe.pth"
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(1)}, "extra": _Untrusted()}, path)
    with pytest.raises(CheckpointError, match=r"_Untrusted.*cannot be loaded safely"):
        _convert(path, tmp_path / "out")
    _assert_nothing_written(tmp_path, tmp_path / "out")


def test_non_beit_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)}}, path)
    with pytest.raises(CheckpointError, match=r"not a BEiT checkpoint.*conv1\.weight"):
        _convert(path, tmp_path / "out")
    _assert_nothing_written(tmp_path, tmp_path / "out")


def test_non_tensor_entries_and_missing_ema(tmp_path, valid_checkpoint):
    path = tmp_path / "odd.pth"
    torch.save({"patch_embed.proj.weight": torch.zeros(1), "counts": collections.Counter("ab")}, path)
    with pytest.raises(CheckpointError, match="not tensors"):
        _convert(path, tmp_path / "out")
    with pytest.raises(CheckpointError, match="model_ema"):
        _convert(valid_checkpoint, tmp_path / "out", use_ema=True)
    _assert_nothing_written(tmp_path, tmp_path / "out")


def test_unknown_keys_are_listed(tmp_path):
    torch.manual_seed(0)
    state = make_mim_checkpoint(depth=2) | {"blocks.0.attn.extra_proj.weight": torch.zeros(2)}
    path = tmp_path / "extra.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ConversionError, match=r"blocks\.0\.attn\.extra_proj\.weight"):
        _convert(path, tmp_path / "out")
    _assert_nothing_written(tmp_path, tmp_path / "out")


def test_registry_mismatch(tmp_path, valid_checkpoint):
    with pytest.raises(ConversionError, match="hidden_size: checkpoint 32 vs beit_base_patch16_224_pt22k 768"):
        _convert(valid_checkpoint, tmp_path / "out", model_name="beit_base_patch16_224_pt22k")
    with pytest.raises(ConversionError, match="Unknown released checkpoint"):
        _convert(valid_checkpoint, tmp_path / "out", model_name="beit_huge")


def test_interrupted_write_leaves_nothing(tmp_path, valid_checkpoint, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(writer_module, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _convert(valid_checkpoint, tmp_path / "out")
    _assert_nothing_written(tmp_path, tmp_path / "out")


def test_existing_output_needs_overwrite(tmp_path, valid_checkpoint):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("user data")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _convert(valid_checkpoint, output)
    assert (output / "keep.txt").read_text() == "user data"
    _convert(valid_checkpoint, output, overwrite=True)
    assert sorted(p.name for p in output.iterdir()) == [
        "README.md",
        "config.json",
        "example.jpg",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_cli_reports_errors_with_exit_code(tmp_path, capsys):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"junk" * 10)
    assert main(["--checkpoint", str(path), "--output", str(tmp_path / "out")]) == 2
    assert "error:" in capsys.readouterr().err
    _assert_nothing_written(tmp_path, tmp_path / "out")
    assert main(["--checkpoint", str(tmp_path / "missing.pth"), "--output", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(("removed", "message"), [
    ("cls_token", r"missing or misshapen: beit\.embeddings\.cls_token"),
    ("patch_embed.proj.bias", r"missing or misshapen: beit\.embeddings\.patch_embeddings\.projection\.bias"),
    # every block's gamma_1 gone: the config then has no layer scale, and the gamma_2 are left over
    ("blocks.*.gamma_1", r"unknown: beit\.encoder\.layer\.0\.lambda_2, beit\.encoder\.layer\.1\.lambda_2"),
])
def test_a_checkpoint_with_a_weight_missing_is_refused_not_filled_at_random(tmp_path, removed, message):
    torch.manual_seed(0)
    state = make_mim_checkpoint(depth=2)
    for key in [removed] if "*" not in removed else [removed.replace("*", str(i)) for i in range(2)]:
        del state[key]
    path = tmp_path / "incomplete.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ConversionError, match=message):
        _convert(path, tmp_path / "out")
    _assert_nothing_written(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("head", ["lm_head", "head"])
def test_a_head_bias_without_its_weight_is_refused_not_taken_as_headless(tmp_path, head):
    torch.manual_seed(0)
    state = make_mim_checkpoint(depth=2)
    bias = state.pop("lm_head.bias")
    del state["lm_head.weight"]
    state[f"{head}.bias"] = bias
    path = tmp_path / "partial_head.pth"
    torch.save({"model": state}, path)
    for task in (None, "classification"):
        with pytest.raises(ConversionError, match=rf"'{head}\.bias' but no '{head}\.weight'"):
            _convert(path, tmp_path / "out", task=task)
        _assert_nothing_written(tmp_path, tmp_path / "out")
