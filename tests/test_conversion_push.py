"""--push-to-hub against a local HTTP server that speaks the part of the Hub API huggingface_hub uses to upload.

The server records every request; the test checks the repo creation, the token, and that the committed files are
byte-for-byte the converted folder. No network is used and nothing is skipped.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import torch
from test_conversion_reference import make_mim_checkpoint

from hf_beit.conversion.cli import main
from hf_beit.conversion.push import push_to_hub


class _FakeHub(BaseHTTPRequestHandler):
    calls: ClassVar[list] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, payload, status=200):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.calls.append(("GET", self.path, self.headers.get("Authorization"), b""))
        self._reply({"error": "not found"}, 404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.calls.append(("POST", self.path, self.headers.get("Authorization"), body))
        base = f"http://127.0.0.1:{self.server.server_port}"
        if self.path == "/api/repos/create":
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
            return self._reply({"url": f"{base}/{repo_id}", "name": repo_id})
        if self.path == "/api/validate-yaml":
            return self._reply({"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._reply(
                {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        if "/commit/" in self.path:
            repo_id = self.path.split("/api/models/")[1].split("/commit/")[0]
            return self._reply(
                {"commitUrl": f"{base}/{repo_id}/commit/{'a' * 40}", "commitOid": "a" * 40, "pullRequestUrl": None}
            )
        return self._reply({"error": f"unexpected {self.path}"}, 404)


@pytest.fixture
def fake_hub():
    _FakeHub.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _FakeHub.calls
    server.shutdown()
    server.server_close()


def _committed_files(calls) -> dict[str, bytes]:
    commit = [body for method, path, _, body in calls if "/commit/" in path]
    assert len(commit) == 1, "exactly one commit expected"
    lines = [json.loads(line) for line in commit[0].decode().splitlines() if line.strip()]
    assert lines[0]["key"] == "header"
    return {
        line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines if line["key"] == "file"
    }


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
    assert _committed_files(calls) == {
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
    files = _committed_files(calls)
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
