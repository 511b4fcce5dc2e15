"""Issue 13, training: reproducible seeding, resume from the newest valid checkpoint, data checked before training,
and command-line errors as messages."""

from __future__ import annotations

import json
import logging

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from test_training_distributed import TINY_CONFIG, _colour_dataset
from test_training_recipes import write_checkpoint

from hf_beit.cli import main
from hf_beit.training.checkpoints import checkpoint_problem, latest_checkpoint, resume_path
from hf_beit.training.recipes import train_classification

QUICK = {"validation_fraction": 0.25, "batch_size": 8, "learning_rate": 3e-3, "warmup": 1, "disable_tqdm": True}


@pytest.fixture
def colour_data(tmp_path):
    torch.set_num_threads(1)
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    return datasets.load_from_disk(_colour_dataset(tmp_path / "data"))


def _run(output_dir, data, **kwargs) -> dict:
    options = {**QUICK, "max_steps": 3, "eval_steps": 3, **kwargs}
    return train_classification(str(output_dir), data=data, config=str(output_dir.parent / "config.json"), **options)


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model" / "model.safetensors"))


def test_from_scratch_runs_with_one_seed_are_identical(tmp_path, colour_data):
    first = _run(tmp_path / "a", colour_data, seed=7)
    torch.manual_seed(12345)  # whatever the global RNG was before, the seed decides the initial weights
    second = _run(tmp_path / "b", colour_data, seed=7)
    other = _run(tmp_path / "c", colour_data, seed=8)
    a, b, c = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert first["eval_loss"] == second["eval_loss"]
    assert any(not torch.equal(a[key], c[key]) for key in a) and other["eval_loss"] != first["eval_loss"]


def test_resume_falls_back_to_the_newest_valid_checkpoint(tmp_path, colour_data, caplog):
    out = tmp_path / "run"
    _run(out, colour_data, max_steps=4, eval_steps=2, save_total_limit=10)
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # the disk filled up while saving
    with caplog.at_level(logging.WARNING):
        resumed = _run(out, colour_data, max_steps=6, eval_steps=2, save_total_limit=10, resume="latest")
    assert "Ignoring checkpoint" in caplog.text and "checkpoint-4: model.safetensors is truncated" in caplog.text
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and "eval_loss" in resumed


def test_damaged_checkpoints_are_told_apart_from_valid_ones(tmp_path, caplog):
    write_checkpoint(tmp_path / "checkpoint-10", 10)
    write_checkpoint(tmp_path / "checkpoint-20", 20)
    (tmp_path / "checkpoint-20" / "trainer_state.json").write_text('{"global_step": 2')  # cut off
    write_checkpoint(tmp_path / "checkpoint-30", 30)
    (tmp_path / "checkpoint-30" / "optimizer.pt").write_bytes(b"PK\x03\x04 truncated")
    write_checkpoint(tmp_path / "checkpoint-40", 40)
    (tmp_path / "checkpoint-40" / "model.safetensors").write_bytes(b"\xff" * 16)
    assert checkpoint_problem(tmp_path / "checkpoint-10") is None
    assert checkpoint_problem(tmp_path / "checkpoint-20") == "trainer_state.json is unreadable (JSONDecodeError)"
    assert checkpoint_problem(tmp_path / "checkpoint-30") == "optimizer.pt is truncated or corrupt"
    assert checkpoint_problem(tmp_path / "checkpoint-40") == "model.safetensors has a corrupt header"
    assert latest_checkpoint(tmp_path).endswith("checkpoint-10")
    assert caplog.text.count("Ignoring checkpoint") == 3
    with pytest.raises(FileNotFoundError, match=r"optimizer\.pt is truncated or corrupt"):
        resume_path(str(tmp_path / "checkpoint-30"), tmp_path)


def _class_folders(root, classes, per_class=6):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / name / f"{index}.png")
    return root


def _train_cli(data, out, config) -> list[str]:
    return ["train", "classification", "--dataset", str(data), "--output-dir", str(out), "--config", str(config),
            "--max-steps", "2", "--batch-size", "4", "--no-progress", "--validation-fraction", "0.25"]


def test_a_corrupt_image_is_reported_by_name_before_training(tmp_path, capsys):
    data = _class_folders(tmp_path / "data", ["red", "blue"])
    png = (data / "blue" / "0.png").read_bytes()
    (data / "blue" / "broken.png").write_bytes(png[: len(png) // 3])
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    assert main(_train_cli(data, tmp_path / "out", tmp_path / "config.json")) == 2
    error = capsys.readouterr().err
    assert "rows of the" in error and "cannot be used" in error and "broken.png" in error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("checkpoint-*"))


def test_a_single_class_gets_a_message_that_says_so(tmp_path, capsys):
    data = _class_folders(tmp_path / "data", ["only"])
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    assert main(_train_cli(data, tmp_path / "out", tmp_path / "config.json")) == 2
    assert "has a single class sub-folder ('only'); classification needs at least two" in capsys.readouterr().err


def test_a_single_label_in_a_dataset_gets_the_same_message():
    from hf_beit.training.data_check import check_single_label_classes
    from hf_beit.training.datasets import DataError, LabelSchema

    with pytest.raises(DataError, match="has 1 class in column 'label' \\('cat'\\); classification needs at least two"):
        check_single_label_classes(LabelSchema({0: "cat"}), "label")
    check_single_label_classes(LabelSchema({0: "cat"}, multi_label=True), "label")  # one tag: a binary problem


def test_training_cli_errors_are_one_message_not_a_traceback(tmp_path, capsys):
    assert main(_train_cli(tmp_path / "missing", tmp_path / "out", "tiny")) == 2
    error = capsys.readouterr().err
    assert error.startswith("hf-beit train classification: error:") and "Traceback" not in error
