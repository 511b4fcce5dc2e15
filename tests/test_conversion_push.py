"""--push-to-hub against a local HTTP server that speaks the part of the Hub API huggingface_hub uses to upload.

The server records every request; the test checks the repo creation, the token, and that the committed files are
byte-for-byte the converted folder. No network is used and nothing is skipped.
"""

from __future__ import annotations

import json

import pytest
import torch
from fake_hub import committed_files
from test_conversion_reference import make_mim_checkpoint

from hf_beit.conversion.cli import main
from hf_beit.conversion.push import push_to_hub


def test_push_folder(tmp_path, fake_hub):
    endpoint, calls = fake_hub
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "beit"}')
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# card\n")
    url = push_to_hub(folder, "someone/tiny-beit", endpoint=endpoint, token="hf_secret")
    assert url.endswith("/someone/tiny-beit/commit/" + "a" * 40)
    create = next(json.loads(body) for _, path, _, body in calls if path == "/api/repos/create")
    assert create["name"] == "tiny-beit" and create["organization"] == "someone" and create["type"] == "model"
    assert all(auth == "Bearer hf_secret" for _, _, auth, _ in calls)
    assert committed_files(calls) == {
        "config.json": b'{"model_type": "beit"}',
        "README.md": b"---\nlicense: mit\n---\n# card\n",
    }


def test_cli_converts_and_pushes_with_token_from_env(tmp_path, fake_hub, monkeypatch, capsys):
    endpoint, calls = fake_hub
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    torch.manual_seed(0)
    checkpoint = tmp_path / "mim.pth"
    torch.save({"model": make_mim_checkpoint(depth=2)}, checkpoint)
    output = tmp_path / "converted"
    code = main(
        [
            "--checkpoint",
            str(checkpoint),
            "--output",
            str(output),
            "--push-to-hub",
            "org/beit-mim",
            "--hub-endpoint",
            endpoint,
        ]
    )
    assert code == 0, capsys.readouterr().err
    files = committed_files(calls)
    assert sorted(files) == ["README.md", "config.json", "example.jpg", "model.safetensors", "preprocessor_config.json"]
    for name, content in files.items():
        assert content == (output / name).read_bytes(), name
    assert {auth for _, _, auth, _ in calls} == {"Bearer hf_from_env"}
    preupload = next(json.loads(body) for _, path, _, body in calls if "/preupload/" in path)
    assert sorted(f["path"] for f in preupload["files"]) == sorted(files)
    assert "Pushed to " in capsys.readouterr().out


def test_push_requires_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="convert the checkpoint first"):
        push_to_hub(tmp_path / "missing", "a/b", endpoint="http://127.0.0.1:9")
