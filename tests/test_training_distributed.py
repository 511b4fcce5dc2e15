"""A 2-process DDP run (torchrun, gloo on CPU) and kill-and-resume reproducing an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from hf_beit.training.augment import AugmentConfig
from hf_beit.training.checkpoints import latest_checkpoint
from hf_beit.training.recipes import train_classification

TINY_CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
    "layer_norm_eps": 1e-6,
    "use_relative_position_bias": True,
}


def _colour_dataset(path, count: int = 48, seed: int = 0) -> str:
    """Noisy reddish (label 0) or bluish (label 1) images, saved with ``save_to_disk``."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(count):
        label = index % 2
        pixels = rng.integers(0, 120, size=(32, 32, 3))
        pixels[..., 0 if label == 0 else 2] += 120
        images.append(Image.fromarray(pixels.astype(np.uint8)))
        labels.append(label)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "blue"])})
    datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).save_to_disk(str(path))
    return str(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_run(tmp_path):
    data = _colour_dataset(tmp_path / "data")
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
    ]
    command += ["-m", "hf_beit.cli", "train", "classification", "--dataset", data, "--output-dir", str(out)]
    command += ["--config", str(tmp_path / "config.json"), "--validation-fraction", "0.25", "--batch-size", "6"]
    command += ["--max-steps", "6", "--eval-steps", "6", "--lr", "3e-3", "--layer-decay", "1.0", "--warmup", "1"]
    command += ["--no-rand-augment", "--random-erasing", "0", "--crop-scale", "0.8", "1", "--no-progress"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    finished = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("Best model saved") == 1  # printed by rank 0 only
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    # 36 training images, 6 per process and 2 processes -> 3 steps per epoch, so 6 steps = 2 epochs
    assert state["epoch"] == pytest.approx(2.0)
    results = json.loads((out / "model" / "eval_results.json").read_text())
    assert results["eval_accuracy"] >= 0.9  # red vs blue is easy; chance is 0.5


def _resume_run(output_dir, data, resume=None) -> dict:
    return train_classification(
        str(output_dir),
        data=data,
        config=str(output_dir.parent / "config.json"),
        validation_fraction=0.25,
        batch_size=8,
        max_steps=10,
        eval_steps=4,
        save_total_limit=10,
        learning_rate=3e-3,
        warmup=2,
        drop_path=0.1,
        mixup=0.8,
        cutmix=1.0,
        augment=AugmentConfig(crop_scale=(0.5, 1.0), rand_augment=(2, 9), random_erasing=0.25),
        disable_tqdm=True,
        resume=resume,
    )


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    data = datasets.load_from_disk(_colour_dataset(tmp_path / "data"))  # 36 train images: 4.5 steps per epoch
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    full = _resume_run(tmp_path / "full", data)

    # the interrupted run got as far as checkpoint-4 (mid-epoch) and died while writing checkpoint-8
    interrupted = tmp_path / "interrupted"
    shutil.copytree(tmp_path / "full" / "checkpoint-4", interrupted / "checkpoint-4")
    (interrupted / "checkpoint-8").mkdir()
    shutil.copy(tmp_path / "full" / "checkpoint-8" / "config.json", interrupted / "checkpoint-8")
    assert latest_checkpoint(interrupted).endswith("checkpoint-4")
    shutil.rmtree(interrupted / "checkpoint-8")  # as the Trainer would overwrite it
    resumed = _resume_run(interrupted, data, resume="latest")

    for name in ("checkpoint-8", "checkpoint-10", "model"):
        ours = load_file(str(interrupted / name / "model.safetensors"))
        reference = load_file(str(tmp_path / "full" / name / "model.safetensors"))
        assert ours.keys() == reference.keys()
        for key in reference:
            torch.testing.assert_close(ours[key], reference[key], rtol=0, atol=1e-6, msg=f"{name}: {key}")
    assert resumed["eval_accuracy"] == full["eval_accuracy"]
    assert resumed["eval_loss"] == pytest.approx(full["eval_loss"], abs=1e-6)
