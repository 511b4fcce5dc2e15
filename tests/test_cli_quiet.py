"""``--quiet``: a command's stderr holds nothing that is not hf_beit's own (no bars, no transformers reports, no
notices from dependencies), and the reports it hides do show without the flag."""

from __future__ import annotations

import json
import subprocess
import sys

from safetensors.torch import load_file, save_file
from test_inference_utils import save_repo, tiny_classifier, write_images


def _predict(repo, image, *flags: str) -> subprocess.CompletedProcess:
    code = "import sys; from hf_beit.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "predict", str(repo), str(image), *flags],
                          capture_output=True, text=True, timeout=300, check=False)


def test_quiet_predict_writes_only_the_results(tmp_path):
    repo = save_repo(tiny_classifier(), tmp_path / "model")
    weights = load_file(repo / "model.safetensors")
    weights["classifier.leftover"] = weights["classifier.bias"].clone()  # a key the model does not have
    save_file(weights, repo / "model.safetensors", metadata={"format": "pt"})
    image = write_images(tmp_path / "in", 1)[0]
    quiet = _predict(repo, image, "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert [r["image"] for r in json.loads(quiet.stdout)] == [str(image)]
    loud = _predict(repo, image)
    assert loud.returncode == 0 and "LOAD REPORT" in loud.stderr and "classifier.leftover" in loud.stderr
    assert "Enum subclass" not in loud.stderr  # torch's notice about torchao's Enums: never shown
