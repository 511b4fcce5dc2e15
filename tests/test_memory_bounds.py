"""Issue 13, memory: peak RSS of ``hf-beit predict`` and ``hf-beit serve`` (child processes) under hostile images.

The model is a tiny BEiT at 224 with unilm's evaluation preprocessing (short side 256, centre crop 224), the
geometry every converted classification repo gets and the one that turned a thin image into gigabytes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from process_helpers import MIB, child_env, run_cli_with_peak_rss, serve_process, status_mib
from server_helpers import b64, body, png
from test_inference_utils import LABELS, random_image, save_repo, tiny_config

import hf_beit


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    config = tiny_config(num_hidden_layers=2, image_size=224, patch_size=16, num_labels=3,
                         id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)})
    processor = hf_beit.BeitImageProcessor.from_preset("imagenet-eval", image_size=224)
    return save_repo(hf_beit.BeitForImageClassification(config).eval(), tmp_path_factory.mktemp("repo") / "model",
                     processor)


_MEASURE = """
import io, sys, numpy as np
from pathlib import Path
from PIL import Image
import hf_beit
from hf_beit.inference._images import load_pixel_values
from hf_beit.pixel_budget import PixelBudget

def mib(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024

processor = hf_beit.BeitImageProcessor.from_pretrained(sys.argv[1])
width, height, mode = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pixels = np.random.default_rng(0).integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
buffer = io.BytesIO()
Image.fromarray(pixels, mode).save(buffer, format="PNG")
raw = buffer.getvalue()
del pixels
small = io.BytesIO()
Image.new(mode, (64, 48)).save(small, format="PNG")
load_pixel_values(small.getvalue(), processor, PixelBudget(), "warm-up")  # first-call allocations of torch
costs = []
Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
before = mib("VmRSS")
load_pixel_values(raw, processor, PixelBudget(), "image", on_cost=costs.append)
print(mib("VmHWM") - before, costs[0].work_bytes / 2**20)
"""


@pytest.mark.parametrize("width, height, mode", [(4000, 3000, "RGB"), (3000, 2000, "RGBA")])
def test_budget_estimates_bound_what_decoding_really_holds(repo, width, height, mode):
    """The server admits images by these estimates: they must not be below the real peak (measured in a child)."""
    result = subprocess.run([sys.executable, "-c", _MEASURE, str(repo), str(width), str(height), mode],
                            check=False, capture_output=True, text=True, timeout=300, env=child_env())
    assert result.returncode == 0, result.stderr[-2000:]
    measured, estimated = map(float, result.stdout.split())
    assert measured > width * height * 3 / MIB  # the image really was decoded in the measured window
    assert measured <= estimated + 8, (measured, estimated)  # 8 MiB of allocator slack


def test_predict_refuses_a_thin_image_by_name_without_allocating(repo, tmp_path):
    thin, photo = tmp_path / "thin.png", tmp_path / "photo.png"
    Image.new("L", (1, 5000)).save(thin)  # resized to a short side of 256: 256 x 1280000 = 1.3 GB of pixels
    random_image(64, 48).save(photo)
    _, normal_peak_mib = run_cli_with_peak_rss(["predict", str(repo), str(photo), "--quiet"])
    start = time.monotonic()
    result, peak_mib = run_cli_with_peak_rss(["predict", str(repo), str(thin), str(photo), "--quiet"])
    assert time.monotonic() - start < 120
    assert result.returncode == 1, result.stderr
    assert f"Cannot read image {str(thin)!r}: the image is 1x5000 pixels; preprocessing would resize it" \
        in result.stderr
    predictions = {row["image"]: row for row in json.loads(result.stdout)}
    assert "error" in predictions[str(thin)] and len(predictions[str(photo)]["predictions"]) == 3
    assert peak_mib < normal_peak_mib + 50, (peak_mib, normal_peak_mib)  # +1.3 GB before the pixel budget


def _peak_above(process, baseline_mib: float) -> float:
    return status_mib(process.pid, "VmHWM") - baseline_mib


def test_serve_stays_within_its_memory_budget_under_huge_and_thin_images(repo):
    budget_mib = 512
    big = png(Image.fromarray(np.zeros((5000, 5000, 3), dtype=np.uint8)))  # 25 MP
    assert len(big) < 100_000
    with serve_process(repo, "--memory-budget-mb", str(budget_mib)) as (url, process):
        warm = httpx.post(f"{url}/score", json=body([b64(png(random_image(64, 48)))]), timeout=60)
        assert warm.status_code == 200, warm.text
        baseline = status_mib(process.pid, "VmRSS")

        thin = httpx.post(f"{url}/score", json=body([b64(png(Image.new("L", (1, 20000))))] * 16), timeout=60)
        assert thin.status_code == 413 and "preprocessing would resize it" in thin.json()["error"]

        async def three_at_once():
            async with httpx.AsyncClient(timeout=300) as client:
                request = body([b64(big)] * 16)  # 16 x 25 MP in about 1.5 MB of JSON
                return await asyncio.gather(*(client.post(f"{url}/score", json=request) for _ in range(3)))

        responses = asyncio.run(asyncio.wait_for(three_at_once(), 300))
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and 200 in codes, [r.text[:200] for r in responses]
        assert _peak_above(process, baseline) < budget_mib + 128  # 2.8 GB and MemoryError 500s before
        health = httpx.get(f"{url}/health", timeout=30).json()
        assert health["memory_peak_bytes"] <= budget_mib * MIB and health["memory_reserved_bytes"] == 0



_FRAGMENTED = """
import threading, time
from pathlib import Path
from hf_beit.inference.server.malloc import Trimmer

def rss():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

kept, released = [], [0]

def work():  # request-sized buffers from several threads, a tenth still alive: freed memory stays in the heaps
    blocks = [bytearray(64 * 1024) for _ in range(2000)]
    kept.extend(blocks[::10])

trimmer = Trimmer(lambda: released[0], interval=0.1, threshold=1)
trimmer.start()
threads = [threading.Thread(target=work) for _ in range(4)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
before = rss()
released[0] = 450 * 2**20  # what the admission would report as given back
time.sleep(1.0)
trimmer.stop()
print(before - rss(), trimmer.trims)
"""


def test_freed_request_memory_goes_back_to_the_system():
    result = subprocess.run([sys.executable, "-c", _FRAGMENTED], check=False, capture_output=True, text=True,
                            timeout=300, env=child_env())
    assert result.returncode == 0, result.stderr[-2000:]
    returned_mib, trims = result.stdout.split()
    assert int(trims) >= 1 and float(returned_mib) > 200  # ~450 MiB of freed 64 KiB buffers sat in the heaps
