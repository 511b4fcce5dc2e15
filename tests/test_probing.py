"""Linear probing: features are unilm's ([CLS; mean patch] of every raw block output), the per-block heads are
independent linear maps trained together, and on digits a MIM-pretrained tiny BEiT's best block beats a random-init
model's (both written as repos and probed through `hf-beit probe`)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import randomize_, tiny_config
from PIL import Image

import hf_beit
from hf_beit.cli import main
from hf_beit.pretraining import PretrainingOptions, load_digits_images, run_pretraining
from hf_beit.probing import PerBlockLinearProbes, ProbeSettings, block_features, train_probes


def test_block_features_are_cls_and_mean_patch_of_raw_block_outputs():
    model = randomize_(hf_beit.BeitForImageClassification(tiny_config()), seed=1).eval()
    pixel_values = torch.randn(5, 3, 32, 32)
    features = block_features(model, pixel_values, batch_size=2)
    with torch.no_grad():
        states = model.beit(pixel_values, output_hidden_states=True).hidden_states
    assert features.shape == (4, 5, 64)
    for block in range(4):
        tokens = states[block + 1]
        expected = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], dim=-1)
        assert (features[block] - expected).abs().max() <= 1e-5


def test_heads_are_independent_linear_maps():
    probes = PerBlockLinearProbes(num_blocks=3, dim=6, num_labels=4)
    with torch.no_grad():
        probes.bias.normal_()
    features = torch.randn(3, 7, 6)
    logits = probes(features)
    for block in range(3):
        expected = features[block] @ probes.weight[block] + probes.bias[block]
        assert (logits[block] - expected).abs().max() <= 1e-6
    assert probes.weight.std().item() == pytest.approx(0.01, rel=0.3)  # unilm's init


def test_each_head_learns_from_its_own_block_only():
    """Block 1 holds the labels linearly, block 0 only noise: their probes must end far apart."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=generator)
    informative = torch.nn.functional.one_hot(labels, 3).float() * 3 + 0.3 * torch.randn(300, 3, generator=generator)
    features = torch.stack([torch.randn(300, 3, generator=generator), informative])
    result = train_probes(features[:, :200], labels[:200], features[:, 200:], labels[200:], ProbeSettings(epochs=30))
    assert result.accuracy[1] > 0.95 and result.accuracy[0] < 0.6 and result.best_block == 1


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_mim_pretrained_best_block_beats_random_init_on_digits(tmp_path, capsys):
    images, _ = load_digits_images(16)
    model_args = {"image_size": 16, "patch_size": 4, "hidden_size": 32, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "intermediate_size": 64, "drop_path_rate": 0.0}
    options = PretrainingOptions(
        output_dir=str(tmp_path / "mim"), max_steps=400, batch_size=64, warmup_steps=40, logging_steps=100,
        save_steps=100000, disable_tqdm=True, kmeans_vocab_size=64, kmeans_fit_images=500, kmeans_steps=50,
        color_jitter=0.0, hflip=False, crop_min_scale=0.5, model_overrides=model_args,
    )
    run_pretraining(images, options)
    pretrained = hf_beit.BeitForMaskedImageModeling.from_pretrained(tmp_path / "mim")
    torch.manual_seed(0)
    random_init = hf_beit.BeitForMaskedImageModeling(pretrained.config)  # unilm's initialisation
    random_init.save_pretrained(tmp_path / "random")
    hf_beit.BeitImageProcessor.from_pretrained(tmp_path / "mim").save_pretrained(tmp_path / "random")

    argv = ["probe", str(tmp_path / "mim"), str(tmp_path / "random"), "digits", "--output", str(tmp_path / "probe"),
            "--epochs", "100", "--quiet"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "probe" / "probe_results.json").read_text())
    mim, random = results["mim"], results["random"]
    assert len(mim["accuracy_per_block"]) == 4 and mim["num_eval"] == 180 and mim["settings"]["learning_rate"] == 4e-3
    assert mim["best_accuracy"] > random["best_accuracy"] + 0.02, (mim, random)
    assert "best block" in capsys.readouterr().out
    with Image.open(tmp_path / "probe" / "probe_accuracy.png") as plot:
        assert plot.format == "PNG" and plot.size == (640, 400)
