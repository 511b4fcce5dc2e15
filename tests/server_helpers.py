"""Helpers of the server tests: uvicorn on 127.0.0.1 in a thread (with hf_beit's connection guards), request bodies,
PNG encoding, raw sockets for slow clients."""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import struct
import threading
import time
import zlib

import uvicorn
from PIL import Image

from hf_beit.inference.server import ServerLimits
from hf_beit.inference.server.options import uvicorn_options


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def running_server(app, limits: ServerLimits | None = None):
    """Serve ``app`` on a free loopback port; with ``limits``, under ``hf-beit serve``'s connection guards."""
    sock = loopback_socket()
    options = uvicorn_options(limits) if limits is not None else {}
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def body(items) -> dict:
    return {"input_data": {"columns": ["image"], "index": list(range(len(items))), "data": items}}


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header promises width x height RGB pixels (tens of GB once decoded)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + \
        png_chunk(b"IEND", b"")


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def raw_connection(url: str, timeout: float = 30.0) -> socket.socket:
    """A plain TCP connection to the server (for clients that misbehave on purpose)."""
    return socket.create_connection(host_port(url), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket times out)."""
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def broken_chunk_png(size: int = 64) -> bytes:
    """A PNG whose second IDAT chunk has a garbage type: Pillow raises ``SyntaxError`` while decoding it."""
    rows = b"".join(b"\0" + bytes(range(3 * size)) for _ in range(size))
    data = zlib.compress(rows, 0)
    half = len(data) // 2
    second = png_chunk(b"IDAT", data[half:])
    second = second[:4] + b"\x00\x01\x02\x03" + second[8:]
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data[:half]) + second + \
        png_chunk(b"IEND", b"")
