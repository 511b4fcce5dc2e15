"""Issue 13, untrusted checkpoints and configs: bounded model construction, clear errors, one writer per output."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from process_helpers import child_env
from test_conversion_reference import make_mim_checkpoint

import hf_beit
from hf_beit import BEIT_PRESETS
from hf_beit.config_bounds import ConfigBoundsError, check_config_bounds
from hf_beit.conversion import CheckpointError, convert_checkpoint
from hf_beit.conversion import writer as writer_module
from hf_beit.conversion.cli import main


def _save(tmp_path, state: dict, name: str = "weights.pth"):
    path = tmp_path / name
    torch.save({"model": state}, path)
    return path


def _convert(checkpoint, output):
    return convert_checkpoint(checkpoint, output, progress=False, log=lambda message: None, verify=False)


def test_one_far_block_key_cannot_ask_for_100000_layers(tmp_path):
    torch.manual_seed(0)
    path = _save(tmp_path, make_mim_checkpoint(depth=2) | {"blocks.99999.norm1.weight": torch.ones(32)})
    assert path.stat().st_size < 200_000
    start = time.monotonic()
    with pytest.raises(CheckpointError, match=r"not numbered 0\.\.99999 without gaps \(99997 missing: 2, 3, 4"):
        _convert(path, tmp_path / "out")
    assert time.monotonic() - start < 10  # > 180 s before: it built the 100000-layer model
    assert not (tmp_path / "out").exists()


def test_a_block_missing_a_tensor_or_with_another_shape_is_named(tmp_path):
    torch.manual_seed(0)
    state = make_mim_checkpoint(depth=3)
    del state["blocks.2.mlp.fc2.bias"]
    with pytest.raises(CheckpointError, match=r"block 2 does not hold the same tensors as block 0 \(blocks\.0\.mlp"):
        _convert(_save(tmp_path, state), tmp_path / "out")
    state = make_mim_checkpoint(depth=3)
    state["blocks.1.norm1.weight"] = torch.ones(7)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.norm1\.weight \(7,\) vs \(32,\)"):
        _convert(_save(tmp_path, state), tmp_path / "out")


def test_non_finite_weights_are_refused(tmp_path, capsys):
    torch.manual_seed(0)
    state = make_mim_checkpoint(depth=2)
    state["blocks.1.attn.qkv.weight"][0, 0] = float("nan")
    state["lm_head.weight"][1, 1] = float("inf")
    path = _save(tmp_path, state)
    assert main(["--checkpoint", str(path), "--output", str(tmp_path / "out")]) == 2  # exit 0 before
    error = capsys.readouterr().err
    assert "2 weight tensor(s) hold NaN or infinite values (blocks.1.attn.qkv.weight, lm_head.weight)" in error
    assert not (tmp_path / "out").exists()


def test_permission_errors_are_reported_not_raised(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    path = _save(tmp_path, make_mim_checkpoint(depth=2))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out"))

    monkeypatch.setattr(writer_module, "save_file", denied)
    assert main(["--checkpoint", str(path), "--output", str(tmp_path / "out"), "--no-verify"]) == 2
    assert "error: [Errno 13] Permission denied" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_two_conversions_to_one_new_path_one_wins_the_other_fails_clearly(tmp_path):
    torch.manual_seed(0)
    path = _save(tmp_path, make_mim_checkpoint(depth=2))
    output = tmp_path / "out"
    command = [sys.executable, "-m", "hf_beit.cli", "convert", "--checkpoint", str(path), "--output", str(output),
               "--no-verify"]
    children = [subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    results = [(child.wait(timeout=300), child.stderr.read()) for child in children]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert any(reason in loser for reason in ("is writing", "is not empty", "created by someone else")), loser
    assert {"config.json", "model.safetensors"} <= {p.name for p in output.iterdir()}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]


@pytest.mark.parametrize("field, value", [("num_hidden_layers", 1_000_000), ("num_hidden_layers", 1e6),
                                          ("hidden_size", 0), ("image_size", [224, 10**9]), ("num_labels", True)])
def test_config_bounds_refuse_absurd_sizes_at_once(field, value):
    config = {**BEIT_PRESETS["beit-base-patch16-224"], field: value}
    start = time.monotonic()
    with pytest.raises(ConfigBoundsError, match=f"Configuration field {field}=.* is out of bounds"):
        check_config_bounds(config)
    assert time.monotonic() - start < 0.1


def test_config_bounds_accept_every_preset_and_bound_the_parameter_count(monkeypatch):
    for preset in BEIT_PRESETS.values():
        check_config_bounds(preset)
    huge = {"num_hidden_layers": 1000, "hidden_size": 32768, "intermediate_size": 131072}
    with pytest.raises(ConfigBoundsError, match=r"more than the limit of 2\.00e[+]10; set HF_BEIT_MAX_PARAMETERS"):
        check_config_bounds(huge)
    monkeypatch.setenv("HF_BEIT_MAX_PARAMETERS", str(10**16))
    check_config_bounds(huge)


def test_from_pretrained_refuses_an_absurd_config_json_at_once(tmp_path, capsys):
    import json

    from PIL import Image

    from hf_beit.cli import main

    hf_beit.BeitImageProcessor().save_pretrained(tmp_path)
    config = {**BEIT_PRESETS["beit-base-patch16-224"], "model_type": "beit", "num_hidden_layers": 1_000_000,
              "architectures": ["BeitForImageClassification"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    start = time.monotonic()
    with pytest.raises(ConfigBoundsError, match="num_hidden_layers=1000000 is out of bounds"):
        hf_beit.BeitForImageClassification.from_pretrained(tmp_path)
    assert time.monotonic() - start < 5  # building 1e6 layers would take hours and all memory
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    assert main(["predict", str(tmp_path), str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert "num_hidden_layers=1000000 is out of bounds" in error and "Traceback" not in error
