"""Progress bars (tqdm, on stderr) of `hf-beit demo`, `hf-beit predict` and `extract_embeddings`: shown by default,
absent with `--quiet` / `progress=False`, and the results the same either way."""

from __future__ import annotations

import json

import torch
from test_inference_utils import random_image, save_repo, tiny_classifier, tiny_processor, write_images

from hf_beit.cli import main
from hf_beit.inference.embeddings import extract_embeddings


def test_embeddings_show_progress_unless_told_not_to(capsys):
    images = [random_image(40, 30, seed=i) for i in range(5)]
    model = tiny_classifier()
    capsys.readouterr()
    shown = extract_embeddings(model, tiny_processor(), images, batch_size=2, progress=True)
    error = capsys.readouterr().err
    assert "embeddings" in error and "5/5" in error and "img" in error
    hidden = extract_embeddings(model, tiny_processor(), images, batch_size=2, progress=False)
    assert capsys.readouterr().err == ""
    assert torch.equal(shown, hidden)


def test_predict_quiet_leaves_stderr_empty(tmp_path, capsys):
    repo = save_repo(tiny_classifier(), tmp_path / "model")
    images = write_images(tmp_path / "in", 2)
    capsys.readouterr()
    assert main(["predict", str(repo), *map(str, images)]) == 0
    shown = capsys.readouterr()
    assert "predict" in shown.err and "2/2" in shown.err
    assert main(["predict", str(repo), *map(str, images), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""  # neither hf_beit's bar nor transformers' weight-loading bar
    assert json.loads(quiet.out) == json.loads(shown.out)


def test_demo_shows_training_progress_unless_quiet(tmp_path, capsys):
    threads = torch.get_num_threads()  # the demo runs on one thread
    try:
        assert main(["demo", "--output", str(tmp_path / "a"), "--epochs", "0.05"]) == 0
        shown = capsys.readouterr()
        assert main(["demo", "--output", str(tmp_path / "b"), "--epochs", "0.05", "--quiet"]) == 0
        quiet = capsys.readouterr()
    finally:
        torch.set_num_threads(threads)
    assert "%|" in shown.err and "it/s]" in shown.err  # tqdm bars of training and evaluation
    assert "%|" not in quiet.err and "it/s" not in quiet.err
    for run in (shown, quiet):
        assert "held-out digits classified correctly by the reloaded pipeline" in run.out
