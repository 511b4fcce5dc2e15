"""Load test of ``hf-beit serve``: bursts of 200 / 500 / 1500 concurrent clients with 1 and 16 images each.

The server runs as a child process (``python -m hf_beit.cli serve``) on 127.0.0.1 with a small random-weight BEiT at
224 and unilm's evaluation preprocessing (short side 256, centre crop 224, as converted repos); every client opens
its own connection and sends one request of real photographs (JPEG, base64) at the same moment. Per case: share of
200 and 503 answers, latency percentiles, images scored per second, and the server's peak RSS (``VmHWM``, reset
before each case), which must stay under ``--rss-budget-mib``. Writes ``benchmarks/results_server_load.md``.

    python benchmarks/bench_server_load.py                 # the full table (minutes on 2 cores)
    python benchmarks/bench_server_load.py --quick         # 50 clients, 1 and 16 images
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _photos import _arrays
from PIL import Image

import hf_beit
from hf_beit.atomic_io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
MIB = 2**20
_CHUNK = 64 * 1024


@dataclass
class Case:
    clients: int
    images: int
    codes: list[str]
    seconds: list[float]
    ok_seconds: list[float]
    wall: float
    peak_rss_mib: float
    baseline_rss_mib: float
    scored: int

    def share(self, code: str) -> float:
        return 100.0 * self.codes.count(code) / len(self.codes)


def _percentile(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.2f}" if values else "-"


def _make_repo(folder: Path) -> Path:
    config = hf_beit.BeitConfig(hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
                                image_size=224, patch_size=16, num_labels=10, use_relative_position_bias=True,
                                use_mean_pooling=True, layer_norm_eps=1e-6)
    hf_beit.BeitForImageClassification(config).eval().save_pretrained(folder)
    hf_beit.BeitImageProcessor.from_preset("imagenet-eval", image_size=224).save_pretrained(folder)
    return folder


def _payload(images: int) -> bytes:
    photos = []
    for array in _arrays():
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array[..., :3])).save(buffer, format="JPEG", quality=90)
        photos.append(base64.b64encode(buffer.getvalue()).decode())
    data = [photos[i % len(photos)] for i in range(images)]
    return json.dumps({"input_data": {"columns": ["image"], "index": list(range(images)), "data": data}}).encode()


def _photo_sizes() -> str:
    areas = sorted((array.shape[1] * array.shape[0], f"{array.shape[1]}x{array.shape[0]}") for array in _arrays())
    return f"{len(areas)} photos from {areas[0][1]} to {areas[-1][1]}"


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


async def _request(port: int, payload: bytes, timeout: float) -> tuple[str, float]:
    start = time.perf_counter()
    head = (f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(head)
                view = memoryview(payload)
                for offset in range(0, len(view), _CHUNK):
                    writer.write(view[offset:offset + _CHUNK])
                    await writer.drain()
                answer = await reader.read()
            finally:
                writer.close()
        code = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "no answer"
    except TimeoutError:
        code = "timeout"
    except OSError as error:
        code = type(error).__name__
    return code, time.perf_counter() - start


async def _burst(port: int, clients: int, payload: bytes, timeout: float) -> list[tuple[str, float]]:
    return await asyncio.gather(*(_request(port, payload, timeout) for _ in range(clients)))


def _health(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def _wait_idle(port: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = _health(port)
        if health["pending_images"] == 0 or time.monotonic() > deadline:
            return health
        time.sleep(0.5)


def run_case(process: subprocess.Popen, port: int, clients: int, images: int, timeout: float) -> Case:
    payload = _payload(images)
    before = _wait_idle(port)["images"]
    Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # reset the server's peak RSS to its current RSS
    baseline = _status(process.pid, "VmRSS")
    start = time.perf_counter()
    results = asyncio.run(_burst(port, clients, payload, timeout))
    wall = time.perf_counter() - start
    peak = _status(process.pid, "VmHWM")
    scored = _wait_idle(port)["images"] - before
    codes = [code for code, _ in results]
    return Case(clients, images, codes, [s for _, s in results], [s for c, s in results if c == "200"], wall, peak,
                baseline, scored)


def _start_server(repo: Path, port: int, flags: list[str], threads: int | None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "hf_beit.cli", "serve", str(repo), "--port", str(port), "--log-level", "error",
               *flags]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while True:
        try:
            _health(port)
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("hf-beit serve did not start") from None
            time.sleep(0.5)


def _header(args: argparse.Namespace, load: tuple, duration: float) -> list[str]:
    import torch

    return [
        "# hf-beit serve under bursts of concurrent clients",
        "",
        f"- command: python benchmarks/bench_server_load.py {' '.join(sys.argv[1:])}".rstrip(),
        ("- server: `hf-beit serve MODEL --memory-budget-mb M --max-pending P` (other limits at their defaults), one "
         "child process" + (f" with OMP_NUM_THREADS={args.torch_threads}" if args.torch_threads else "")),
        ("- model: random-weight BEiT, 6 layers, width 192, 224x224, patch 16, 10 classes; processor "
         "`imagenet-eval-224` (short side 256, centre crop 224)"),
        (f"- each client: its own connection, one `POST /score` of N real photographs (JPEG q90, {_photo_sizes()}, "
         f"base64), all clients at once; 1 image = {len(_payload(1)) / 1024:.0f} KiB, 16 images = "
         f"{len(_payload(16)) / 1024:.0f} KiB of JSON"),
        f"- peak RSS: the server's VmHWM, reset before each case; budget {args.rss_budget_mib} MiB",
        (f"- torch {torch.__version__}, hf_beit from this checkout, Python {platform.python_version()}, "
         f"{os.cpu_count()} CPUs; load average (1 min) before/after: {load[0]:.1f} / {load[1]:.1f}; "
         f"duration {duration:.0f} s"),
    ]


def _table(title: str, cases: list[Case], rss_budget_mib: int) -> list[str]:
    lines = [
        "",
        f"## {title}",
        "",
        ("| clients | images/request | 200 | 503 | other | p50 / p99 all (s) | p50 / p99 of 200s (s) | burst (s) "
         "| images scored/s | server RSS before / peak (MiB) | under budget |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        other = sorted({code for code in case.codes if code not in ("200", "503")})
        other_text = ", ".join(f"{code} x{case.codes.count(code)}" for code in other) or "0"
        lines.append(
            f"| {case.clients} | {case.images} | {case.share('200'):.1f}% | {case.share('503'):.1f}% | {other_text} "
            f"| {_percentile(case.seconds, 50)} / {_percentile(case.seconds, 99)} "
            f"| {_percentile(case.ok_seconds, 50)} / {_percentile(case.ok_seconds, 99)} | {case.wall:.1f} "
            f"| {case.scored / case.wall:.0f} | {case.baseline_rss_mib:.0f} / {case.peak_rss_mib:.0f} "
            f"| {'yes' if case.peak_rss_mib < rss_budget_mib else '**no**'} |"
        )
    return lines


def _run_server_cases(repo: Path, args: argparse.Namespace, max_pending: int) -> list[Case]:
    """One server with ``--max-pending max_pending``; every (images, clients) case against it, in order."""
    flags = ["--memory-budget-mb", str(args.memory_budget_mb), "--max-pending", str(max_pending)]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = _start_server(repo, port, flags, args.torch_threads)
    cases = []
    try:
        asyncio.run(_burst(port, 4, _payload(16), args.timeout))  # warm-up
        for images in args.images:
            for clients in args.clients:
                case = run_case(process, port, clients, images, args.timeout)
                print(f"max-pending {max_pending}, {clients} clients x {images} images: 200 {case.share('200'):.1f}%, "
                      f"503 {case.share('503'):.1f}%, peak RSS {case.peak_rss_mib:.0f} MiB", flush=True)
                cases.append(case)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[200, 500, 1500])
    parser.add_argument("--images", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rss-budget-mib", type=int, default=2048, help="the server's peak RSS must stay below")
    parser.add_argument("--memory-budget-mb", type=int, default=768, help="hf-beit serve --memory-budget-mb")
    parser.add_argument("--torch-threads", type=int, default=1, help="OMP_NUM_THREADS of the server (0: unset)")
    parser.add_argument("--max-pending", type=int, nargs="+", default=[256, 100000],
                        help="hf-beit serve --max-pending; one server and table per value")
    parser.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    parser.add_argument("--quick", action="store_true", help="50 clients only")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results_server_load.md"))
    args = parser.parse_args()
    if args.quick:
        args.clients = [50]
    load_before, started = os.getloadavg()[0], time.monotonic()
    tables: list[str] = []
    all_cases: list[Case] = []
    with tempfile.TemporaryDirectory() as folder:
        repo = _make_repo(Path(folder) / "model")
        for max_pending in args.max_pending:
            cases = _run_server_cases(repo, args, max_pending)
            title = (f"--max-pending {max_pending}, --memory-budget-mb {args.memory_budget_mb}"
                     + (" (the memory budget is the binding limit)" if max_pending >= 10000 else ""))
            tables += _table(title, cases, args.rss_budget_mib)
            all_cases += cases
    header = _header(args, (load_before, os.getloadavg()[0]), time.monotonic() - started)
    report = "\n".join(header + tables) + "\n"
    atomic_write_text(args.output, report)
    print(report)
    return 0 if all(case.peak_rss_mib < args.rss_budget_mib for case in all_cases) else 1


if __name__ == "__main__":
    sys.exit(main())
