"""Issue 13, server side: hostile images and bodies cost a clear 4xx, never gigabytes, a 500 or other requests' answers.

Servers run in this process on 127.0.0.1 with hf-beit serve's connection guards; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from PIL import Image
from server_helpers import b64, body, broken_chunk_png, png, raw_connection, read_until_closed, running_server
from test_inference_utils import random_image, save_repo, tiny_classifier, tiny_segmenter

import hf_beit
from hf_beit.cli import main
from hf_beit.inference.predict import pixel_probabilities
from hf_beit.inference.server import ServerLimits, UrlPolicy, create_app

MIB = 1024 * 1024


def converted_style_processor() -> hf_beit.BeitImageProcessor:
    """The geometry every converted classification repo gets: short side resize, then a centre crop."""
    return hf_beit.BeitImageProcessor(size={"shortest_edge": 36}, do_center_crop=True,
                                      crop_size={"height": 32, "width": 32})


def slow(model: torch.nn.Module, seconds: float) -> torch.nn.Module:
    model.register_forward_pre_hook(lambda module, args: time.sleep(seconds))
    return model


def _direct_probs(model, processor, image: Image.Image) -> torch.Tensor:
    return pixel_probabilities(model, [processor(images=image, return_tensors="pt")["pixel_values"][0]])[0]


def test_thin_image_is_refused_from_its_header_in_milliseconds():
    thin = png(Image.new("L", (1, 20000)))
    assert len(thin) < 200  # about a hundred bytes that would resize to 36 x 720000 pixels
    app = create_app(tiny_classifier(), converted_style_processor())
    with running_server(app, ServerLimits()) as url:
        start = time.monotonic()
        response = httpx.post(f"{url}/score", json=body([b64(thin)] * 16), timeout=30)
        assert time.monotonic() - start < 5
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error.startswith("input_data.data[0] is 1x20000 pixels; preprocessing would resize it to 36x720000")
        assert "at most 4194304 resized pixels" in error
        health = httpx.get(f"{url}/health", timeout=30).json()
        assert health["memory_peak_bytes"] < 20 * MIB and health["memory_reserved_bytes"] == 0
        assert httpx.post(f"{url}/score", json=body([b64(png(random_image(50, 40)))]), timeout=30).status_code == 200


def _transparent_and_sixteen_bit(tmp_path):
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red, but fully transparent: white once composited
    Image.fromarray(rgba).save(tmp_path / "transparent.png")
    Image.fromarray(np.full((30, 40), 30000, dtype=np.uint16)).save(tmp_path / "grey16.png")
    return [tmp_path / "transparent.png", tmp_path / "grey16.png"]


def test_server_and_predict_decode_like_the_processor(tmp_path):
    """Transparent -> white (not black), 16-bit scaled (not clipped): one decoder for processor, CLI and server."""
    model, processor = tiny_classifier(), converted_style_processor()
    paths = _transparent_and_sixteen_bit(tmp_path)
    expected = [_direct_probs(model, processor, Image.open(path)) for path in paths]
    naive = [_direct_probs(model, processor, Image.open(path).convert("RGB")) for path in paths]
    for right, wrong in zip(expected, naive):
        assert (right - wrong).abs().max() > 1e-3  # the old decoding gave other answers
    with running_server(create_app(model, processor), ServerLimits()) as url:
        rows = httpx.post(f"{url}/score", json=body([b64(p.read_bytes()) for p in paths]), timeout=30).json()
    for row, probs in zip(rows, expected):
        torch.testing.assert_close(torch.tensor(row["probs"]), probs, rtol=1e-5, atol=1e-6)
    results = hf_beit.inference.predict_images(model, processor, paths, progress=False)
    for result, probs in zip(results, expected):
        scores = {p["label"]: p["score"] for p in result["predictions"]}
        assert scores == pytest.approx({label: float(p) for label, p in zip(["cat", "dog", "bird"], probs)}, abs=1e-6)


def test_malformed_inputs_get_400_not_500():
    policy = UrlPolicy.from_hosts(["127.0.0.1"])
    cases = {
        "corrupt PNG chunk (SyntaxError)": (body([b64(broken_chunk_png())]), "corrupt or truncated"),
        "5000-digit number": (b'{"input_data": {"data": [' + b"7" * 5000 + b"]}}", "cannot be parsed"),
        "URL with a tab": (body(["http://127.0.0.1/a\tb.png"]), "control characters"),
        "URL with CRLF": (body(["http://127.0.0.1/a.png\r\nHost: evil"]), "control characters"),
        "URL of 64 K characters": (body(["http://127.0.0.1/" + "a" * 65536]), "at most 8192"),
        "URL with a bad port": (body(["http://127.0.0.1:99999/a.png"]), "not a valid URL"),
    }
    with running_server(create_app(tiny_classifier(), converted_style_processor(), url_policy=policy),
                        ServerLimits()) as url:
        for name, (payload, message) in cases.items():
            kwargs = {"content": payload} if isinstance(payload, bytes) else {"json": payload}
            response = httpx.post(f"{url}/score", timeout=30, **kwargs)
            assert response.status_code == 400, (name, response.text)
            assert message in response.json()["error"], (name, response.text)


def test_a_client_that_uploads_a_refused_body_anyway_reads_the_answer():
    """Lingering close: the server discards the rest of the body instead of resetting the connection."""
    limits = ServerLimits(memory_budget_bytes=8 * MIB, max_body_bytes=64 * MIB)
    size = 32 * MIB
    with running_server(create_app(tiny_classifier(), converted_style_processor(), limits=limits), limits) as url:
        for _ in range(3):
            sock = raw_connection(url)
            sock.sendall(f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode() + b"x" * size)
            answer = read_until_closed(sock)  # a plain close would reset: ConnectionResetError on sendall or here
            assert answer.startswith(b"HTTP/1.1 413") and b"whole request memory budget" in answer


def _send_headers(url: str, content_length: int):
    sock = raw_connection(url, timeout=10)
    sock.sendall(f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {content_length}\r\n\r\n".encode() + b'{"input_data"')
    return sock


def test_memory_budget_gives_503_with_retry_after_and_413_when_a_request_can_never_fit():
    limits = ServerLimits(memory_budget_bytes=8 * MIB, max_body_bytes=16 * MIB)
    with running_server(create_app(tiny_classifier(), converted_style_processor(), limits=limits), limits) as url:
        never = read_until_closed(_send_headers(url, 4 * MIB))  # 3 copies of 4 MiB can never fit in 8 MiB
        assert never.startswith(b"HTTP/1.1 413") and b"whole request memory budget (8 MiB)" in never
        holder = _send_headers(url, 2 * MIB)  # reserves 6 MiB while its body is (not) arriving
        time.sleep(0.5)
        busy = read_until_closed(_send_headers(url, 2 * MIB))
        assert busy.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in busy.lower()
        assert b"request memory budget (8 MiB) is in use" in busy
        holder.close()  # the client gives up: its reservation is returned
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health", timeout=30).json()["memory_reserved_bytes"] and time.monotonic() < deadline:
            time.sleep(0.1)
        ok = httpx.post(f"{url}/score", json=body([b64(png(random_image(50, 40)))]), timeout=30)
        assert ok.status_code == 200, ok.text


async def _post_all(url: str, bodies: list, timeout: float) -> list:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        return await asyncio.gather(*(client.post(f"{url}/score", json=b) for b in bodies), return_exceptions=True)


def test_back_pressure_is_configurable_and_answers_503_with_retry_after():
    limits = ServerLimits(max_pending=4)
    app = create_app(slow(tiny_classifier(), 0.2), converted_style_processor(), limits=limits, max_batch_size=1)
    with running_server(app, limits) as url:
        bodies = [body([b64(png(random_image(50, 40, seed=i)))]) for i in range(12)]
        responses = asyncio.run(asyncio.wait_for(_post_all(url, bodies, 60), 120))
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 503} and codes.count(200) >= 4 and codes.count(503) >= 4, codes
    for response in responses:
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
            assert "images are waiting (at most 4)" in response.json()["error"]


def test_one_failing_request_does_not_fail_the_others_in_its_micro_batch():
    model, processor = tiny_classifier(), converted_style_processor()

    def refuse_white(module, args, kwargs):
        if bool((kwargs["pixel_values"].flatten(1).min(dim=1).values > 0.99).any()):
            raise ValueError("white images are not supported by this model")

    images = [random_image(50, 40, seed=1), Image.new("RGB", (50, 40), "white"), random_image(45, 40, seed=2)]
    expected = [_direct_probs(model, processor, image) for image in images]
    model.register_forward_pre_hook(refuse_white, with_kwargs=True)
    app = create_app(model, processor, max_wait_ms=300)  # the three requests share one forward pass
    with running_server(app, ServerLimits()) as url:
        responses = asyncio.run(asyncio.wait_for(_post_all(url, [body([b64(png(i))]) for i in images], 60), 120))
        health = httpx.get(f"{url}/health", timeout=30).json()
    assert [r.status_code for r in responses] == [200, 400, 200]
    assert "white images are not supported" in responses[1].json()["error"]
    for index in (0, 2):
        torch.testing.assert_close(torch.tensor(responses[index].json()[0]["probs"]), expected[index],
                                   rtol=1e-5, atol=1e-6)
    assert health["requests"] == 2 and health["pending_images"] == 0


def test_abandoned_requests_are_dropped_before_the_model_runs_them():
    app = create_app(slow(tiny_classifier(), 0.5), converted_style_processor(), max_batch_size=1)
    with running_server(app, ServerLimits()) as url:
        bodies = [body([b64(png(random_image(50, 40, seed=i)))] * 4) for i in range(8)]
        outcomes = asyncio.run(asyncio.wait_for(_post_all(url, bodies, 0.3), 60))
        assert all(isinstance(outcome, httpx.TimeoutException) for outcome in outcomes)
        time.sleep(3)
        health = httpx.get(f"{url}/health", timeout=30).json()
    assert health["requests"] <= 2 and health["dropped_requests"] >= 6, health
    assert health["pending_images"] == 0 and health["memory_reserved_bytes"] == 0


def test_serve_cli_wires_limits_and_guards(tmp_path, monkeypatch):
    repo = save_repo(tiny_classifier(), tmp_path / "model")
    launched = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: launched.update(app=app, **kwargs))
    assert main(["serve", str(repo), "--max-pending", "7", "--memory-budget-mb", "64", "--header-timeout", "3",
                 "--max-connections", "50", "--max-resized-pixels", "1000"]) == 0
    assert launched["http"].header_timeout == 3 and launched["http"].max_connections == 50
    admission = launched["app"].state.admission
    assert admission.max_pending == 7 and admission.capacity == 64 * MIB


def test_serve_refuses_a_repo_of_another_task(tmp_path, capsys, monkeypatch):
    repo = save_repo(tiny_segmenter(), tmp_path / "segmenter")
    capsys.readouterr()
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: pytest.fail("a segmentation repo was served"))
    assert main(["serve", str(repo)]) == 2
    error = capsys.readouterr().err.strip()
    assert "is a semantic segmentation (UPerNet) model" in error and len(error.splitlines()) == 1
