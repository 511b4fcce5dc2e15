"""`hf-beit serve` endpoint: real HTTP round trips against uvicorn on 127.0.0.1 (loopback only)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http.server

import httpx
import pytest
import torch
import uvicorn
from local_http import serving
from PIL import Image
from server_helpers import b64, body, bomb_png, png, running_server
from test_inference_utils import LABELS, random_image, tiny_classifier, tiny_processor

from hf_beit.inference.server import MicroBatcher, ServerLimits, UrlPolicy, create_app
from hf_beit.inference.server.payload import response_rows

LIMITS = ServerLimits(max_body_bytes=300_000, max_images=4, max_pixels=256 * 256)


def _expected_probs(model, images):
    with torch.no_grad():
        return [model(**tiny_processor()(images=img, return_tensors="pt")).logits.softmax(-1)[0] for img in images]


@pytest.fixture(scope="module")
def model():
    return tiny_classifier()


@pytest.fixture(scope="module")
def server(model):
    with running_server(create_app(model, tiny_processor(), limits=LIMITS, max_wait_ms=5)) as url:
        yield url


def _assert_probs(row, expected):
    assert row["labels"] == LABELS  # class-id order
    torch.testing.assert_close(torch.tensor(row["probs"]), expected, rtol=1e-5, atol=1e-6)


def test_valid_request_matches_direct_model_call(server, model):
    images = [random_image(40, 30, seed=1), random_image(17, 60, seed=2), random_image(64, 64, seed=3).convert("L")]
    items = [b64(png(images[0])), "data:image/png;base64," + b64(png(images[1])),
             base64.urlsafe_b64encode(png(images[2])).decode().rstrip("=")]
    response = httpx.post(f"{server}/score", json=body(items), timeout=30)
    assert response.status_code == 200, response.text
    rows = response.json()
    assert len(rows) == 3
    for row, expected in zip(rows, _expected_probs(model, [img.convert("RGB") for img in images])):
        _assert_probs(row, expected)
    # pandas "split" rows ([[image], ...]) are accepted too
    split = {"input_data": {"columns": ["image"], "index": [0], "data": [[items[0]]]}}
    _assert_probs(httpx.post(f"{server}/score", json=split, timeout=30).json()[0], _expected_probs(model, images)[0])


BAD_REQUESTS = {
    "malformed JSON": (b'{"input_data": {"data": [', 400, "not valid JSON"),
    "deeply nested JSON": (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    "no input_data": (b'{"data": []}', 400, "'input_data'"),
    "no image column": (b'{"input_data": {"columns": ["text"], "data": ["x"]}}', 400, "containing 'image'"),
    "empty data": (b'{"input_data": {"columns": ["image"], "data": []}}', 400, "non-empty list"),
    "index mismatch": (b'{"input_data": {"index": [0, 1], "data": ["aGk="]}}', 400, "one entry per row"),
    "number instead of image": (b'{"input_data": {"data": [42]}}', 400, "got int"),
    "bad base64": (body(["not*base64!"]), 400, "neither an http(s) URL nor valid base64"),
    "non-image bytes": (body([b64(b"hello, I am plain text")]), 400, "not an image"),
    "truncated image": (body([b64(png(random_image(60, 60))[:300])]), 400, "corrupt or truncated"),
    "too many images": (body([b64(png(random_image()))] * 5), 413, "at most 4 per request"),
    "oversized body": (b'{"input_data": {"data": ["' + b"A" * 400_000 + b'"]}}', 413, "at most 300000 bytes"),
    "bomb: compressible 6000x6000": (body([b64(png(Image.new("L", (6000, 6000))))]), 413, "at most 65536 pixels"),
    "bomb: 100000x100000 header": (body([b64(bomb_png(100_000, 100_000))]), 413, "too large to decode safely"),
    "URL while fetching is off": (body(["http://169.254.169.254/latest/meta-data"]), 403, "--allow-url-host"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_clear_4xx_and_server_keeps_serving(server, model, case):
    payload, status, message = BAD_REQUESTS[case]
    kwargs = {"content": payload} if isinstance(payload, bytes) else {"json": payload}
    response = httpx.post(f"{server}/score", timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    image = random_image(seed=11)
    after = httpx.post(f"{server}/score", json=body([b64(png(image))]), timeout=30)
    assert after.status_code == 200
    _assert_probs(after.json()[0], _expected_probs(model, [image])[0])


def test_health_and_unknown_routes_answer_json(server):
    health = httpx.get(f"{server}/health", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["num_labels"] == 3
    assert httpx.get(f"{server}/score", timeout=30).json() == {"error": "Method Not Allowed"}
    assert httpx.post(f"{server}/nope", timeout=30).status_code == 404


def test_200_concurrent_requests_are_micro_batched(server, model):
    images = [random_image(30 + 3 * i, 30, seed=20 + i) for i in range(4)]
    expected = _expected_probs(model, images)
    bodies = [body([b64(png(images[i % 4]))]) for i in range(200)]
    before = httpx.get(f"{server}/health", timeout=30).json()

    async def send_all():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{server}/score", json=body) for body in bodies))

    responses = asyncio.run(asyncio.wait_for(send_all(), timeout=120))
    assert [r.status_code for r in responses] == [200] * 200
    for i, response in enumerate(responses):
        _assert_probs(response.json()[0], expected[i % 4])  # each caller gets its own image's answer
    after = httpx.get(f"{server}/health", timeout=30).json()
    assert after["requests"] - before["requests"] == 200
    assert after["batches"] - before["batches"] < 200  # concurrent requests shared forward passes


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def static_files(folder):
    with serving(functools.partial(_QuietHandler, directory=str(folder))) as url:
        yield url


def test_image_urls_only_from_allowed_hosts(model, tmp_path):
    image = random_image(33, 44, seed=5)
    (tmp_path / "sub").mkdir()
    image.save(tmp_path / "cat.png")
    policy = UrlPolicy.from_hosts(["127.0.0.1"])
    with static_files(tmp_path) as files, running_server(create_app(model, tiny_processor(), url_policy=policy)) as url:
        ok = httpx.post(f"{url}/score", json=body([f"{files}/cat.png", b64(png(image))]), timeout=30)
        assert ok.status_code == 200, ok.text
        for row in ok.json():
            _assert_probs(row, _expected_probs(model, [image])[0])
        port = files.rsplit(":", 1)[1]
        refused = {
            f"http://localhost:{port}/cat.png": (403, "not on this server's URL allow-list"),
            f"ftp://127.0.0.1:{port}/cat.png": (400, "http(s) URL"),
            f"{files}/missing.png": (400, "HTTP 404"),
            f"{files}/sub": (400, "redirects are not followed"),  # the file server answers 301 -> /sub/
            f"http://user:pw@127.0.0.1:{port}/cat.png": (400, "credentials"),
        }
        for item, (status, message) in refused.items():
            response = httpx.post(f"{url}/score", json=body([item]), timeout=30)
            assert response.status_code == status and message in response.json()["error"], (item, response.text)


def test_url_policy_validates_hosts():
    assert UrlPolicy.from_hosts(["Images.Example.com", "[::1]"]).allowed_hosts == {"images.example.com", "::1"}
    for bad in ("https://example.com", "example.com:8080", "example.com/path", ""):
        with pytest.raises(ValueError, match="bare host name"):
            UrlPolicy.from_hosts([bad])


def test_response_rows_top_k_sorted():
    probs = torch.tensor([[0.2, 0.5, 0.3]])
    assert response_rows(probs, LABELS, None) == [{"probs": pytest.approx([0.2, 0.5, 0.3]), "labels": LABELS}]
    assert response_rows(probs, LABELS, 2) == [{"probs": pytest.approx([0.5, 0.3]), "labels": ["dog", "bird"]}]


def test_micro_batcher_packs_whole_requests_and_isolates_errors():
    calls = []

    def times_ten(items):
        calls.append(len(items))
        if "boom" in items:
            raise RuntimeError("model failed")
        return [item * 10 for item in items]

    async def scenario():
        batcher = MicroBatcher(times_ten, max_batch_size=4, max_wait_ms=20)
        await batcher.start()
        try:
            results = await asyncio.gather(*(batcher.submit(list(range(n))) for n in [1, 2, 3, 1, 2]))
            failed = await asyncio.gather(batcher.submit(["boom"]), batcher.submit([1]), return_exceptions=True)
        finally:
            await batcher.stop()
        return results, failed, batcher.stats

    results, failed, stats = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert results == [[0], [0, 10], [0, 10, 20], [0], [0, 10]]
    assert calls[:3] == [3, 4, 2]  # requests are never split; a request that does not fit waits for the next batch
    assert stats.batches == 4 and stats.images == 10 and stats.requests == 6  # incl. the isolated re-run
    # isolation: the failed shared batch is re-run per request, so only the request that fails learns of it
    assert isinstance(failed[0], RuntimeError) and failed[1] == [10]
    assert calls[3:] == [2, 1, 1]


def test_serve_cli_wires_options_into_the_app(model, tmp_path, monkeypatch):
    from test_inference_utils import save_repo

    from hf_beit.cli import main

    repo = save_repo(model, tmp_path / "model")
    launched = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: launched.update(app=app, **kwargs))
    assert main(["serve", str(repo), "--port", "8123", "--max-images", "1", "--max-pixels", "100",
                 "--allow-url-host", "127.0.0.1", "--top-k", "2"]) == 0
    assert launched["host"] == "127.0.0.1" and launched["port"] == 8123
    image = random_image(8, 10, seed=8)
    with running_server(launched["app"]) as url:
        ok = httpx.post(f"{url}/score", json=body([b64(png(image))]), timeout=30).json()[0]
        probs = _expected_probs(model, [image])[0]
        best = probs.argsort(descending=True)[:2]
        assert ok["labels"] == [LABELS[i] for i in best]
        torch.testing.assert_close(torch.tensor(ok["probs"]), probs[best], rtol=1e-5, atol=1e-6)
        too_big = httpx.post(f"{url}/score", json=body([b64(png(random_image(20, 20)))]), timeout=30)
        assert too_big.status_code == 413 and "at most 100 pixels" in too_big.json()["error"]
        two = httpx.post(f"{url}/score", json=body([b64(png(image))] * 2), timeout=30)
        assert two.status_code == 413 and "at most 1 per request" in two.json()["error"]
        missing_host = httpx.post(f"{url}/score", json=body(["http://example.com/a.png"]), timeout=30)
        assert missing_host.status_code == 403 and "allow-list" in missing_host.json()["error"]
