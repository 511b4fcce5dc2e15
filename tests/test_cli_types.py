"""Numeric options of the hf-beit commands: refused by argparse (exit code 2) before any work is done."""

from __future__ import annotations

import argparse

import pytest

from hf_beit.cli import main
from hf_beit.cli_types import below_one, non_negative_float, non_negative_int, positive_float, positive_int


@pytest.mark.parametrize(("parse", "good", "bad"), [
    (positive_int, {"1": 1, "64": 64}, ["0", "-3", "1.5", "abc"]),
    (non_negative_int, {"0": 0, "4": 4}, ["-1", "x"]),
    (positive_float, {"5e-4": 5e-4, "2": 2.0}, ["0", "-1", "nan", "inf", "abc"]),
    (non_negative_float, {"0": 0.0, "0.1": 0.1}, ["-5", "nan"]),
    (below_one, {"0": 0.0, "0.99": 0.99}, ["1", "1.5", "-0.1"]),
])
def test_argument_types_accept_the_range_and_name_it_otherwise(parse, good, bad):
    for text, value in good.items():
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected .*, got '{text}'"):
            parse(text)


@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--gradient-accumulation-steps", "0"],
                                    ["--drop-path", "1.5"], ["--epochs", "-1"], ["--lr", "nan"]])
def test_train_refuses_out_of_range_numbers_before_creating_anything(tmp_path, capsys, option):
    output = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "classification", "--dataset", str(tmp_path / "data"), "--output-dir", str(output), *option])
    assert exit_info.value.code == 2
    assert f"argument {option[0]}: expected" in capsys.readouterr().err
    assert not output.exists()


def test_pretrain_refuses_a_zero_batch(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--dataset", "digits", "--output-dir", str(tmp_path / "o"), "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "argument --batch-size: expected a whole number >= 1, got '0'" in capsys.readouterr().err


def test_ctrl_c_during_training_says_the_checkpoints_are_kept(tmp_path, capsys, monkeypatch):
    import hf_beit.pretraining.recipe as pretraining_recipe
    import hf_beit.training.recipes as recipes

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipes, "run_finetuning", interrupted)
    monkeypatch.setattr(pretraining_recipe, "run_pretraining", interrupted)
    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
    assert main(["train", "classification", "--dataset", str(data), "--output-dir", str(tmp_path / "run")]) == 130
    assert "interrupted; the final model was not written; the checkpoints saved so far stay in --output-dir" in (
        capsys.readouterr().err)
    assert main(["pretrain", "--dataset", "digits", "--output-dir", str(tmp_path / "mim"), "--image-size", "16",
                 "--patch-size", "4", "--hidden-size", "16", "--num-hidden-layers", "1", "--num-attention-heads", "2",
                 "--intermediate-size", "32"]) == 130
    assert "interrupted; the model was not written; the checkpoints saved so far stay in --checkpoint-dir" in (
        capsys.readouterr().err)
