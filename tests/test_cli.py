"""The ``hf-beit`` entry point: fast to start (no torch/transformers import to build the parser), --version, and every
option's default visible in --help."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import hf_beit
from hf_beit.cli import build_parser

HEAVY = ("torch", "transformers", "torchvision", "datasets", "PIL", "numpy")


def test_building_the_parser_imports_nothing_heavy():
    code = "import sys, hf_beit.cli; hf_beit.cli.build_parser(); print(','.join(m for m in %r if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code % (HEAVY,)], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_help_is_fast_and_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"hf-beit {hf_beit.__version__}"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "hf_beit.cli", "--help"], check=False, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    print(f"hf-beit --help took {seconds:.2f} s in a fresh process")
    assert result.returncode == 0 and "convert" in result.stdout and "export" in result.stdout
    assert seconds < 10  # generous for a loaded machine; the import check above is the real guard


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        (["train", "classification"], "--epochs", "30.0"),
        (["train", "classification"], "--image-column", "image"),
        (["pretrain"], "--learning-rate", "0.0015"),
        (["predict"], "--batch-size", "8"),
        (["convert"], "--image-size", None),
        (["evaluate"], "--no-progress", None),  # a flag: "(default: True)" of its inverted dest would mislead
    ],
)
def test_every_default_is_shown(capsys, command, option, default):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.strip().startswith(option))
    block = text[text.index(line):].split("\n  -", 1)[0]
    if default is None:
        assert "(default:" not in block  # options without a default say nothing about one
    else:
        assert f"(default: {default})" in " ".join(block.split())
