"""The *Uses* snippets of converted repos' cards run as written against a tiny converted repo.

Every ```python block of the card is executed with only the repo id replaced by the local folder; the shell blocks
run the real ``hf-beit`` parser and commands, ``printf`` and ``curl`` against the real server; results are compared
with stock transformers on the same repo.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from huggingface_hub import ModelCard
from PIL import Image
from server_helpers import running_server
from sklearn.datasets import load_sample_image
from test_conversion_reference import make_backbone, make_mim_checkpoint, make_upernet_checkpoint

import hf_beit
from hf_beit.cli import build_parser, main
from hf_beit.configuration_beit import MODEL_SIZES
from hf_beit.conversion import convert_checkpoint
from hf_beit.conversion.card_usage import SERVER_URL
from hf_beit.data.labels import id2label_for
from hf_beit.inference._loading import load_image_processor, load_model
from hf_beit.inference.server import create_app

_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _blocks(card: str, language: str) -> list[str]:
    return [code for lang, code in _FENCE.findall(card) if lang == language]


def _classifier_checkpoint(classes: int = 5) -> dict:
    return make_backbone() | {
        "fc_norm.weight": 1 + 0.1 * torch.randn(32),
        "fc_norm.bias": 0.1 * torch.randn(32),
        "head.weight": torch.randn(classes, 32),
        "head.bias": torch.randn(classes),
    }


_CHECKPOINTS = {
    "classification": (_classifier_checkpoint, {}),
    "mim": (make_mim_checkpoint, {}),
    "segmentation": (lambda: make_upernet_checkpoint(num_classes=5), {}),
    "retargeted": (make_mim_checkpoint, {"task": "classification", "num_labels": 4}),
}


def _convert(tmp_path: Path, kind: str) -> tuple[Path, str]:
    make, options = _CHECKPOINTS[kind]
    torch.manual_seed(0)
    checkpoint = tmp_path / f"{kind}.pth"
    torch.save({"model": make()}, checkpoint)
    repo_id = f"org/tiny-{kind}"
    result = convert_checkpoint(checkpoint, tmp_path / kind, repo_id=repo_id, progress=False, log=lambda m: None,
                                **options)
    return result.output, repo_id


def _run_python(code: str, repo_id: str, repo: Path) -> tuple[dict, str]:
    assert f'"{repo_id}"' in code or "pipeline(" in code
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace(f'"{repo_id}"', repr(str(repo))), "<card>", "exec"), namespace)
    return namespace, out.getvalue()


def _stock_top(repo: Path, k: int) -> list[str]:
    """Top-k labels of the example photo with stock transformers' class on hf_beit's preprocessing."""
    model = transformers.BeitForImageClassification.from_pretrained(repo).eval()
    image = Image.open(repo / "example.jpg").convert("RGB")
    with torch.no_grad():
        logits = model(**hf_beit.BeitImageProcessor.from_pretrained(repo)(images=image, return_tensors="pt")).logits
    return [model.config.id2label[i] for i in logits[0].topk(k).indices.tolist()]


def _commands(code: str, repo_id: str, repo: Path) -> list[list[str]]:
    """The ``hf-beit`` command lines of a shell block, with the repo id replaced by the folder."""
    lines = [line.split("  #")[0].rstrip(" &") for line in code.splitlines()]
    return [shlex.split(line.replace(repo_id, str(repo)))[1:] for line in lines if line.startswith("hf-beit ")]


def test_example_image_is_sklearns_photo(tmp_path):
    repo, _ = _convert(tmp_path, "classification")
    assert np.array_equal(np.asarray(Image.open(repo / "example.jpg")), load_sample_image("china.jpg"))


def test_classification_card_snippets_run(tmp_path, monkeypatch):
    repo, repo_id = _convert(tmp_path, "classification")
    card = ModelCard.load(repo / "README.md")
    expected = _stock_top(repo, 3)
    python = _blocks(card.text, "python")
    assert len(python) == 3
    _, printed = _run_python(python[0], repo_id, repo)
    assert [line.split(": ")[0] for line in printed.splitlines()] == expected
    namespace, _ = _run_python(python[1], repo_id, repo)
    stock = transformers.BeitModel.from_pretrained(repo).eval()
    pixel_values = hf_beit.BeitImageProcessor.from_pretrained(repo)(images=namespace["image"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(namespace["embedding"], stock(**pixel_values).pooler_output)
    assert namespace["patch_tokens"].shape == (1, 16, 32)
    _, printed = _run_python(python[2], repo_id, repo)
    assert [row["label"] for row in ast.literal_eval(printed)] == expected

    monkeypatch.chdir(tmp_path)
    shutil.copyfile(repo / "example.jpg", tmp_path / "example.jpg")  # what the card's `hf download` line does
    bash = _blocks(card.text, "bash")
    (predict,) = _commands(bash[0], repo_id, repo)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(predict) == 0
    assert [p["label"] for p in json.loads(out.getvalue())[0]["predictions"]] == expected


def test_endpoint_sample_matches_the_server(tmp_path, monkeypatch):
    repo, repo_id = _convert(tmp_path, "classification")
    card = ModelCard.load(repo / "README.md")
    serve_block = _blocks(card.text, "bash")[1]
    (serve,) = _commands(serve_block, repo_id, repo)
    args = build_parser().parse_args(serve)
    sample = json.loads(_blocks(card.text, "json")[0])

    monkeypatch.chdir(tmp_path)
    shutil.copyfile(repo / "example.jpg", tmp_path / "example.jpg")
    model = load_model(args.model, "image-classification")
    app = create_app(model, load_image_processor(args.model), top_k=args.top_k)
    with running_server(app) as url:
        script = "\n".join(line for line in serve_block.splitlines() if not line.startswith("hf-beit "))
        answer = subprocess.run(["bash", "-c", script.replace(SERVER_URL, url)], capture_output=True, text=True,
                                check=True, timeout=60).stdout
    response = json.loads(answer)
    assert len(response) == len(sample) == 1
    for got, shown in zip(response, sample):
        assert got.keys() == shown.keys() == {"probs", "labels"}
        assert len(got["probs"]) == len(shown["probs"]) == len(got["labels"]) == len(shown["labels"]) == 3
        assert got["labels"] == _stock_top(repo, 3)
        names = set(model.config.id2label.values())
        assert set(shown["labels"]) <= names and set(got["labels"]) <= names
        for probs in (got["probs"], shown["probs"]):
            assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)


def test_mim_card_snippets_run(tmp_path):
    repo, repo_id = _convert(tmp_path, "mim")
    card = ModelCard.load(repo / "README.md")
    python = _blocks(card.text, "python")
    assert len(python) == 3 and not _blocks(card.text, "bash")
    namespace, _ = _run_python(python[0], repo_id, repo)
    stock = transformers.BeitForMaskedImageModeling.from_pretrained(repo).eval()
    inputs = hf_beit.BeitImageProcessor.from_pretrained(repo)(images=namespace["image"], return_tensors="pt")
    with torch.no_grad():
        expected = stock(**inputs, bool_masked_pos=namespace["bool_masked_pos"]).logits
    assert expected.shape == (1, 16, 24)
    torch.testing.assert_close(namespace["logits"], expected)
    namespace, _ = _run_python(python[1], repo_id, repo)
    assert namespace["embedding"].shape == (1, 32) and namespace["patch_tokens"].shape == (1, 16, 32)
    namespace, printed = _run_python(python[2], repo_id, repo)
    assert np.asarray(ast.literal_eval(printed)).shape == (1, 17, 32)


def test_segmentation_card_snippets_run(tmp_path, monkeypatch):
    repo, repo_id = _convert(tmp_path, "segmentation")
    card = ModelCard.load(repo / "README.md")
    (python,) = _blocks(card.text, "python")
    namespace, printed = _run_python(python, repo_id, repo)
    assert namespace["segmentation"].shape == (427, 640)
    assert set(ast.literal_eval(printed)) <= set(namespace["model"].config.id2label.values())

    monkeypatch.chdir(tmp_path)
    shutil.copyfile(repo / "example.jpg", tmp_path / "example.jpg")
    (segment,) = _commands(_blocks(card.text, "bash")[0], repo_id, repo)
    assert main([*segment, "--quiet"]) == 0
    masks = sorted(path.name for path in (tmp_path / "masks").iterdir())
    assert any(name.startswith("example") for name in masks)


def test_retargeted_card_says_the_head_is_untrained(tmp_path):
    repo, repo_id = _convert(tmp_path, "retargeted")
    card = ModelCard.load(repo / "README.md")
    assert "is new (initialised at random, not trained)" in card.text and "must be fine-tuned" in card.text
    assert card.data.pipeline_tag == "image-feature-extraction"
    assert "hf-beit predict" not in card.text and "hf-beit serve" not in card.text and "pipeline(" not in card.text
    (python,) = _blocks(card.text, "python")
    namespace, _ = _run_python(python, repo_id, repo)
    assert namespace["embedding"].shape == (1, 32)
    (train,) = _commands(_blocks(card.text, "bash")[0], repo_id, repo)
    args = build_parser().parse_args(train)
    assert args.task == "classification" and args.init_from == str(repo)
    with pytest.raises(hf_beit.tasks.WrongTaskError):
        load_model(repo, "image-classification")  # what the card warns about: the head is not trained


def test_registry_ade20k_card_snippet_runs(tmp_path, monkeypatch):
    """A registry ADE20k conversion (base size shrunk): the snippet slides over the keep-ratio resized photo."""
    tiny = {"hidden_size": 16, "num_hidden_layers": 12, "num_attention_heads": 2, "intermediate_size": 64}
    monkeypatch.setitem(MODEL_SIZES, "base", tiny)
    torch.manual_seed(0)
    state = make_upernet_checkpoint(num_classes=150, aux_channels=8, dim=16, depth=12, heads=2, window=32, patch=16)
    torch.save({"state_dict": state}, tmp_path / "ade.pth")
    repo_id = "org/beitv2-base-patch16-224-pt1k-ftade20k"
    result = convert_checkpoint(tmp_path / "ade.pth", tmp_path / "ade",
                                model_name="beitv2_base_patch16_224_pt1k_ftade20k",
                                repo_id=repo_id, progress=False, log=lambda m: None)
    card = ModelCard.load(result.output / "README.md")
    assert card.data.base_model == "org/beitv2-base-patch16-224-pt1k" and "becomes 767x512" in card.text
    (python,) = _blocks(card.text, "python")
    namespace, printed = _run_python(python, repo_id, result.output)
    assert namespace["segmentation"].shape == (427, 640)
    assert set(ast.literal_eval(printed)) <= set(id2label_for("ade20k").values())
