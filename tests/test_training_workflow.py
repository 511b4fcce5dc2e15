"""Issue 14, training like transformers' scripts: a non-empty output directory needs --resume or --overwrite,
--report-to reaches transformers' integrations, --push-to-hub uploads the best model with a generated card whose
snippets run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import datasets
import pytest
import torch
import yaml
from fake_hub import committed_files
from PIL import Image
from test_training_distributed import TINY_CONFIG, _colour_dataset

import hf_beit
from hf_beit.cli import main
from hf_beit.training.model_card import finetuned_card

REVISION = "0" * 40


@pytest.fixture
def colours(tmp_path):
    torch.set_num_threads(1)
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    data = tmp_path / "data"
    datasets.load_from_disk(_colour_dataset(data))  # a saved DatasetDict folder: what --dataset accepts
    return data, tmp_path / "config.json"


def _train(data, config, out, *extra: str) -> list[str]:
    return ["train", "classification", "--dataset", str(data), "--config", str(config), "--output-dir", str(out),
            "--max-steps", "4", "--eval-steps", "2", "--logging-steps", "1", "--batch-size", "8", "--lr", "3e-3",
            "--warmup", "1", "--validation-fraction", "0.25", "--no-progress", *extra]


def _log_steps(out) -> list[int]:
    return [record["step"] for record in map(json.loads, (out / "training_log.jsonl").read_text().splitlines())
            if "loss" in record]


def test_a_non_empty_output_dir_needs_resume_or_overwrite(colours, tmp_path, capsys):
    data, config = colours
    out = tmp_path / "run"
    assert main(_train(data, config, out)) == 0
    (out / "notes.txt").write_text("mine")
    first_log = (out / "training_log.jsonl").read_text()
    capsys.readouterr()

    assert main(_train(data, config, out)) == 2
    error = capsys.readouterr().err
    assert "is not empty" in error and "--resume" in error and "--overwrite" in error and "Traceback" not in error
    assert (out / "training_log.jsonl").read_text() == first_log  # nothing touched

    assert main(_train(data, config, out, "--overwrite")) == 0
    assert _log_steps(out) == [1, 2, 3, 4]  # the new run's records only, not appended to the first run's
    assert (out / "notes.txt").read_text() == "mine"  # only a run's own outputs are removed

    assert main(_train(data, config, out, "--resume", "--max-steps", "6")) == 0
    assert _log_steps(out)[-2:] == [5, 6]


def test_report_to_tensorboard_logs_the_training_loss(colours, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data, config = colours
    out = tmp_path / "run"
    assert main(_train(data, config, out, "--report-to", "tensorboard")) == 0
    logged = []
    for events in sorted((out / "runs").rglob("events.out.tfevents.*")):  # one file per writer the Trainer opened
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if "train/loss" in accumulator.Tags()["scalars"]:
            logged += [(event.step, event.value) for event in accumulator.Scalars("train/loss")]
    records = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    expected = [(record["step"], record["loss"]) for record in records if "loss" in record]
    assert [step for step, _ in sorted(logged)] == [step for step, _ in expected] == [1, 2, 3, 4]
    assert [value for _, value in sorted(logged)] == pytest.approx([value for _, value in expected], rel=1e-5)


def _python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL)


def test_push_to_hub_uploads_the_model_with_a_card_whose_snippets_run(colours, tmp_path, fake_hub, capsys):
    endpoint, calls = fake_hub
    data, config = colours
    out = tmp_path / "run"
    argv = _train(data, config, out, "--push-to-hub", "someone/colours-beit", "--hub-endpoint", endpoint)
    assert main(argv) == 0
    assert "Pushed to someone/colours-beit" in capsys.readouterr().out
    files = committed_files(calls)
    model_dir = out / "model"
    assert sorted(files) == sorted(path.name for path in model_dir.iterdir())
    assert {"README.md", "example.jpg", "config.json", "model.safetensors"} <= set(files)
    assert all(content == (model_dir / name).read_bytes() for name, content in files.items())

    card = files["README.md"].decode()
    metadata = yaml.safe_load(card.split("---")[1])
    results = json.loads(files["eval_results.json"])
    (entry,) = metadata["model-index"]
    accuracy = next(m for r in entry["results"] for m in r["metrics"] if m["type"] == "eval_accuracy")
    assert accuracy["value"] == round(results["eval_accuracy"], 4)
    assert f"| eval_accuracy | {results['eval_accuracy']:.4f} |" in card
    assert "| max_steps | 4 |" in card and "red" in card  # recipe and label set

    # The card's Python snippets, verbatim, against the pushed files in an offline Hub cache.
    cache = tmp_path / "hf_cache"
    root = cache / "models--someone--colours-beit"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(REVISION)
    snapshot = root / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        (snapshot / name).write_bytes(content)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    printed = []
    for block in _python_blocks(card):
        ran = subprocess.run([sys.executable, "-c", block], env=env, capture_output=True, text=True, timeout=300,
                             check=False)
        assert ran.returncode == 0, ran.stderr
        printed.append(ran.stdout)
    # what the model itself says about the example photo, by hand
    model = hf_beit.BeitForImageClassification.from_pretrained(model_dir).eval()
    processor = hf_beit.BeitImageProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        probs = model(**processor(images=Image.open(model_dir / "example.jpg"), return_tensors="pt")).logits.softmax(-1)
    expected = [model.config.id2label[i] for i in probs[0].argsort(descending=True).tolist()]
    top = [line.split(": ")[0] for line in printed[0].splitlines()]  # "label: probability" lines
    assert top == expected[: len(top)] and len(top) == 2  # top-3 of 2 classes


def test_card_names_a_hub_base_model_and_says_when_there_is_none():
    config = hf_beit.BeitConfig(num_labels=2, id2label={0: "cat", 1: "dog"}, label2id={"cat": 0, "dog": 1})
    metrics = {"eval_accuracy": 0.75, "eval_loss": 0.5, "eval_runtime": 1.0}
    arguments = {"init_from": "microsoft/beit-base-patch16-224-pt22k", "dataset": "org/pets", "epochs": 3.0}
    card = str(finetuned_card("me/pets", "classification", config, arguments, metrics))
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["base_model"] == "microsoft/beit-base-patch16-224-pt22k"
    assert metadata["datasets"] == ["org/pets"]
    assert "eval_runtime" not in card and "Labels: 2 classes: 0 = cat; 1 = dog." in card
    scratch = str(finetuned_card("me/pets", "classification", config, {"dataset": "/data/pets"}, metrics))
    assert "base_model" not in yaml.safe_load(scratch.split("---")[1])
    assert "trained from scratch" in scratch
