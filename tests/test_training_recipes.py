"""Recipe plumbing: argument validation, CLI mapping, checkpoint discovery and atomic final output."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import hf_beit
from hf_beit.cli import build_parser
from hf_beit.training.checkpoints import latest_checkpoint, resume_path, save_final_model
from hf_beit.training.datasets import LabelSchema
from hf_beit.training.recipes import FinetuneArguments, _base_config


def test_argument_validation():
    with pytest.raises(ValueError, match="task"):
        FinetuneArguments(task="detection", output_dir="x")
    with pytest.raises(ValueError, match="layer_decay"):
        FinetuneArguments(task="classification", output_dir="x", layer_decay=1.5)
    with pytest.raises(ValueError, match="min_learning_rate"):
        FinetuneArguments(task="classification", output_dir="x", learning_rate=1e-6, min_learning_rate=1e-3)


def test_cli_flags_map_onto_finetune_arguments():
    args = build_parser().parse_args(
        ["train", "segmentation", "--dataset", "d", "--output-dir", "o", "--reduce-labels", "--lr", "3e-5"]
        + ["--layer-decay", "0.65", "--no-rand-augment", "--resume", "--no-weight-decay-on-relative-tables"]
    )
    assert args.task == "segmentation" and args.learning_rate == 3e-5 and args.layer_decay == 0.65
    assert args.rand_augment is None and args.resume == "latest" and args.reduce_labels
    assert args.decay_relative_position_tables is False
    classification = build_parser().parse_args(["train", "classification", "--dataset", "digits", "--output-dir", "o"])
    assert classification.rand_augment == (2, 9) and classification.resume is None
    fields = {field.name for field in FinetuneArguments.__dataclass_fields__.values()}
    augment = {"crop_scale", "hflip", "rand_augment", "color_jitter", "random_erasing"}
    assert set(vars(args)) - {"command", "train_command", "func", "num_threads"} - augment <= fields


def test_base_config_from_preset_tiny_and_json(tmp_path):
    schema = LabelSchema({0: "a", 1: "b"})
    base = _base_config(FinetuneArguments("classification", "o", config="beit-base-patch16-224"), schema)
    assert base.hidden_size == 768 and base.num_labels == 2 and base.layer_norm_eps == 1e-6
    tiny = _base_config(FinetuneArguments("segmentation", "o", image_size=64, drop_path=0.2), schema)
    assert tiny.image_size == 64 and tiny.drop_path_rate == 0.2 and tiny.out_indices == [1, 2, 3, 5]  # unilm rule
    (tmp_path / "c.json").write_text(json.dumps({"hidden_size": 48, "num_attention_heads": 3, "num_labels": 9}))
    from_json = _base_config(FinetuneArguments("classification", "o", config=str(tmp_path / "c.json")), schema)
    assert from_json.hidden_size == 48 and from_json.num_labels == 2
    with pytest.raises(ValueError, match="neither 'tiny'"):
        _base_config(FinetuneArguments("classification", "o", config="huge"), schema)


def write_checkpoint(folder, step: int) -> None:
    """A minimal resumable checkpoint: trainer state and weights."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    save_file({"w": torch.zeros(3)}, folder / "model.safetensors")


def test_latest_checkpoint_skips_incomplete(tmp_path, caplog):
    assert latest_checkpoint(tmp_path / "missing") is None
    for step, complete in ((5, True), (10, True), (15, False)):
        if complete:
            write_checkpoint(tmp_path / f"checkpoint-{step}", step)
        else:
            (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-x").mkdir()
    assert latest_checkpoint(tmp_path).endswith("checkpoint-10")
    assert "interrupted while saving" in caplog.text and "checkpoint-15" in caplog.text
    assert resume_path("latest", tmp_path).endswith("checkpoint-10") and resume_path(None, tmp_path) is None
    with pytest.raises(FileNotFoundError, match="not a complete Trainer checkpoint"):
        resume_path(str(tmp_path / "checkpoint-15"), tmp_path)
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        resume_path(True, tmp_path / "checkpoint-x")


class _FailingProcessor:
    def save_pretrained(self, path):
        raise OSError("disk full")


def test_final_model_is_written_atomically(tmp_path):
    config = hf_beit.BeitConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    model = hf_beit.BeitForImageClassification(config)
    target = tmp_path / "model"
    processor = hf_beit.BeitImageProcessor()
    save_final_model(model, processor, target, {"eval_accuracy": 0.5})
    assert json.loads((target / "eval_results.json").read_text()) == {"eval_accuracy": 0.5}
    with pytest.raises(OSError, match="disk full"):
        save_final_model(model, _FailingProcessor(), target, {"eval_accuracy": 0.9})
    # the previous output is intact and no temporary directory is left behind
    assert json.loads((target / "eval_results.json").read_text()) == {"eval_accuracy": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    save_final_model(model, processor, target, {"eval_accuracy": 0.9})
    assert json.loads((target / "eval_results.json").read_text()) == {"eval_accuracy": 0.9}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_parser_registers_both_tasks():
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = subcommands.choices["train"]
    tasks = next(a for a in train._actions if isinstance(a, argparse._SubParsersAction))
    assert set(tasks.choices) == {"classification", "segmentation"}
