"""Helpers for tests that measure another process: peak RSS of a command, ``hf-beit serve`` as a child process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import hf_beit

MIB = 1024 * 1024
_SRC = str(Path(hf_beit.__file__).resolve().parents[1])
_PEAK_OF_CHILD = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
                  "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
                  "sys.exit(p.returncode)")


def child_env() -> dict[str, str]:
    """The environment of a child Python that imports this checkout of hf_beit."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_SRC, os.environ.get("PYTHONPATH")]))}


def run_cli_with_peak_rss(args: list[str], timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``hf-beit ARGS`` in a child process; returns the result and its peak RSS in MiB."""
    command = [sys.executable, "-c", _PEAK_OF_CHILD, sys.executable, "-m", "hf_beit.cli", *args]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, env=child_env())
    *stderr, peak_kib = result.stderr.rstrip("\n").split("\n")
    result.stderr = "\n".join(stderr)
    return result, int(peak_kib) / 1024


def status_mib(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_process(repo: Path, *flags: str, startup_timeout: float = 180):
    """``hf-beit serve REPO FLAGS`` on a free loopback port; yields ``(url, process)`` once ``/health`` answers."""
    port = free_port()
    command = [sys.executable, "-m", "hf_beit.cli", "serve", str(repo), "--port", str(port), "--log-level",
               "warning", *flags]
    process = subprocess.Popen(command, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "hf-beit serve did not start"
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
