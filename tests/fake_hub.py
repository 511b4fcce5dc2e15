"""A local HTTP server speaking the part of the Hub API that huggingface_hub uses to create a repo and upload a
folder; it records every request. Used by the push tests (fixture ``fake_hub`` in conftest.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

from local_http import serving


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


@contextmanager
def running_fake_hub() -> Iterator[tuple[str, list]]:
    """``(endpoint URL, recorded calls)`` of a fake Hub listening on 127.0.0.1 while the context is open."""
    _FakeHub.calls = []
    with serving(_FakeHub) as url:
        yield url, _FakeHub.calls


def committed_files(calls) -> dict[str, bytes]:
    commit = [body for method, path, _, body in calls if "/commit/" in path]
    assert len(commit) == 1, "exactly one commit expected"
    lines = [json.loads(line) for line in commit[0].decode().splitlines() if line.strip()]
    assert lines[0]["key"] == "header"
    return {
        line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines if line["key"] == "file"
    }
