"""Issue 13, slow and greedy clients: deadlines for headers, bodies and URL fetches, and a connection limit.

Everything listens on 127.0.0.1; deadlines are shortened to fractions of a second so each test ends in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import time

import httpx
from local_http import serving
from server_helpers import b64, body, png, raw_connection, read_until_closed, running_server
from test_inference_utils import random_image, tiny_classifier, tiny_processor

from hf_beit.inference.server import ServerLimits, UrlPolicy, create_app

FAST = ServerLimits(header_timeout=0.5, body_timeout=1.0, keep_alive_timeout=0.5)


def _server(limits: ServerLimits = FAST, **kwargs):
    return running_server(create_app(tiny_classifier(), tiny_processor(), limits=limits, **kwargs), limits)


def _closed_within(sock, seconds: float) -> tuple[bytes, float]:
    start = time.monotonic()
    sock.settimeout(seconds)
    answer = read_until_closed(sock)
    return answer, time.monotonic() - start


def test_silent_and_partial_header_connections_are_closed():
    with _server() as url:
        silent = raw_connection(url)
        answer, waited = _closed_within(silent, 10)
        assert answer == b"" and waited < 5  # closed after the header deadline, nothing to answer
        partial = raw_connection(url)
        partial.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Le")
        answer, waited = _closed_within(partial, 10)
        assert answer.startswith(b"HTTP/1.1 408") and b"headers not received within 0.5 s" in answer and waited < 5
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200


def test_a_body_sent_a_byte_at_a_time_gets_408_and_the_connection_is_closed():
    with _server() as url:
        sock = raw_connection(url)
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        start = time.monotonic()
        answer = b""
        sock.settimeout(0.2)
        with contextlib.suppress(OSError):
            for _ in range(50):  # one byte every 0.2 s would take 200 s
                sock.sendall(b" ")
                with contextlib.suppress(TimeoutError):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
        answer += read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408") and b"not received within 1 s" in answer
        assert time.monotonic() - start < 6


def test_connection_limit_evicts_idle_connections_and_refuses_when_all_are_busy():
    limits = ServerLimits(max_connections=10, header_timeout=30, body_timeout=30)
    with _server(limits) as url:
        idle = [raw_connection(url) for _ in range(30)]  # silent connections: would hold 30 file descriptors
        start = time.monotonic()
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200  # the oldest idle ones made room
        assert time.monotonic() - start < 3
        for sock in idle:
            sock.close()
        busy = []
        for _ in range(10):  # requests whose bodies are still arriving are never evicted
            sock = raw_connection(url)
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            busy.append(sock)
        time.sleep(0.5)
        refused = raw_connection(url)
        answer, _ = _closed_within(refused, 10)
        assert answer.startswith(b"HTTP/1.1 503") and b"too many open connections" in answer
        assert b"retry-after: 1" in answer
        for sock in busy:
            sock.close()


class _Drip(http.server.BaseHTTPRequestHandler):
    """Answers 200 and then one byte every 0.2 s, for ever (until the client leaves)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def dripping_server():
    with serving(_Drip) as url:
        yield url


def test_dripping_urls_are_cut_off_in_total_and_do_not_starve_base64_requests():
    policy = UrlPolicy.from_hosts(["127.0.0.1"], timeout_seconds=1.0)
    with dripping_server() as drip, _server(ServerLimits(), url_policy=policy) as url:

        async def scenario():
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
                start = time.monotonic()
                slow = [asyncio.ensure_future(client.post(f"{url}/score", json=body([f"{drip}/{i}.png"])))
                        for i in range(45)]
                await asyncio.sleep(0.2)
                image = body([b64(png(random_image(40, 30)))])
                fast = await asyncio.gather(*(client.post(f"{url}/score", json=image) for _ in range(5)))
                fast_seconds = time.monotonic() - start
                return await asyncio.gather(*slow), fast, fast_seconds, time.monotonic() - start

        slow, fast, fast_seconds, total = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert [r.status_code for r in fast] == [200] * 5 and fast_seconds < 3
    assert {r.status_code for r in slow} <= {400, 503}
    delivered = [r for r in slow if r.status_code == 400]
    assert delivered and all("did not deliver the image within 1 s" in r.json()["error"] for r in delivered)
    assert total < 10  # 45 URLs, at most 16 at once, each cut off after 1 s in total
