"""Hub ids wherever a model or dataset is named, resolved offline from a prepared Hugging Face cache
(``models--org--name/snapshots/REV`` and ``datasets--org--name/...`` with ``refs/main``, ``HF_HUB_OFFLINE=1``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from conftest import randomize_, tiny_config
from PIL import Image

import hf_beit

REVISION = "0123456789abcdef0123456789abcdef01234567"


def _cached(cache: Path, kind: str, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in an HF cache, registered as its ``main`` revision."""
    root = cache / f"{kind}s--{repo_id.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(REVISION)
    return root / "snapshots" / REVISION


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf_cache")
    model = randomize_(hf_beit.BeitForImageClassification(tiny_config(use_relative_position_bias=True)))
    model.config.id2label, model.config.label2id = {0: "red", 1: "green", 2: "blue"}, {"red": 0, "green": 1, "blue": 2}
    snapshot = _cached(cache, "model", "org/tiny-beit")
    model.save_pretrained(snapshot)
    hf_beit.BeitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False).save_pretrained(snapshot)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    images = [Image.new("RGB", (32, 32), colours[i % 3]) for i in range(12)]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "green", "blue"])}
    )
    data = datasets.Dataset.from_dict({"image": images, "label": [i % 3 for i in range(12)]}, features=features)
    data_dir = _cached(cache, "dataset", "org/colours") / "data"
    data_dir.mkdir(parents=True)
    data.to_parquet(data_dir / "train-00000-of-00001.parquet")
    images[0].save(cache / "red.png")
    return cache


def _run(cache: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_DATASETS_CACHE": str(cache / "ds")}
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "hf_beit.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_predict_and_pipeline_take_a_hub_id(hub_cache):
    result = _run(hub_cache, "predict", "org/tiny-beit", str(hub_cache / "red.png"), "--top-k", "3")
    assert result.returncode == 0, result.stderr
    (prediction,) = json.loads(result.stdout)
    assert {label["label"] for label in prediction["predictions"]} == {"red", "green", "blue"}
    code = (
        "import hf_beit; from PIL import Image; "
        "classify = hf_beit.pipeline('image-classification', model='org/tiny-beit'); "
        "print(classify(Image.new('RGB', (32, 32)), top_k=1)[0]['label'])"
    )
    result = _run(hub_cache, code=code)
    assert result.returncode == 0 and result.stdout.strip() in {"red", "green", "blue"}, result.stderr


def test_training_from_a_hub_model_on_a_hub_dataset(hub_cache, tmp_path):
    result = _run(
        hub_cache, "train", "classification", "--dataset", "org/colours", "--init-from", "org/tiny-beit",
        "--output-dir", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "4", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    trained = hf_beit.BeitForImageClassification.from_pretrained(tmp_path / "run" / "model")
    assert trained.config.id2label == {0: "red", 1: "green", 2: "blue"}


def test_an_uncached_hub_id_offline_is_a_one_line_error(hub_cache):
    result = _run(hub_cache, "predict", "org/not-there", str(hub_cache / "red.png"))
    assert result.returncode == 2
    assert "not in the Hugging Face cache, and downloads are off" in result.stderr
    assert "Traceback" not in result.stderr
