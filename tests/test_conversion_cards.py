"""Registry, preprocessing presets, model statistics and the generated model cards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import ModelCard
from test_conversion_card_usage import _FENCE, _run_python
from test_conversion_reference import make_backbone

from hf_beit.configuration_beit import MODEL_SIZES
from hf_beit.conversion import (
    RELEASED_CHECKPOINTS,
    build_config,
    compute_model_stats,
    convert_checkpoint,
    get_released_checkpoint,
)
from hf_beit.conversion.release_cards import release_facts, render_release_card
from hf_beit.data.labels import id2label_for
from hf_beit.stock_taps import STOCK_TAP_SHIFT, stock_taps_note

CARDS = Path(__file__).resolve().parents[1] / "model_cards"


def test_registry_covers_every_release():
    names = set(RELEASED_CHECKPOINTS)
    for size in ("base", "large"):
        assert {
            f"beit_{size}_patch16_224_pt22k",
            f"beit_{size}_patch16_224_pt22k_ft22k",
            f"beit_{size}_patch16_224_pt22k_ft22kto1k",
            f"beit_{size}_patch16_384_pt22k_ft22kto1k",
            f"beit_{size}_patch16_224_pt22k_ft1k",
            f"beit_{size}_patch16_640_pt22k_ft22ktoade20k",
        } <= names
    assert "beit_large_patch16_512_pt22k_ft22kto1k" in names
    per_family = {}
    for entry in RELEASED_CHECKPOINTS.values():
        per_family[entry.family.name] = per_family.get(entry.family.name, 0) + 1
    assert per_family == {"beit": 13, "beit-pt1k": 1, "beitv2": 16, "dit": 4, "data2vec-vision": 4}
    assert get_released_checkpoint("beit-base-patch16-224").name == "beit_base_patch16_224_pt22k_ft22kto1k"
    entry = get_released_checkpoint("beit_large_patch16_512_pt22k_ft22kto1k.pth")
    assert entry.image_size == 512 and [m.value for m in entry.metrics] == [88.6, 98.658]


def _analytic_base_classification(image=224, classes=1000, dim=768, ffn=3072, layers=12, heads=12):
    """Hand count of BEiT-base: parameters and multiply-accumulates (matmuls, conv, attention)."""
    tokens, window = (image // 16) ** 2 + 1, image // 16
    per_layer = (
        4 * dim + 4 * dim * dim + 3 * dim + 2 * dim * ffn + ffn + dim + 2 * dim + ((2 * window - 1) ** 2 + 3) * heads
    )
    params = 3 * 256 * dim + dim + dim + layers * per_layer + 2 * dim + dim * classes + classes
    macs = (tokens - 1) * 768 * dim + layers * (4 * tokens * dim * dim + 2 * tokens**2 * dim + 2 * tokens * dim * ffn)
    return params, (macs + dim * classes) / 1e9


@pytest.mark.parametrize("image", [224, 384])
def test_stats_match_hand_count(image):
    name = f"beit_base_patch16_{image}_pt22k_ft22kto1k"
    facts = release_facts(RELEASED_CHECKPOINTS[name])
    stats = compute_model_stats(build_config(facts, num_labels=1000), "classification")
    params, gmacs = _analytic_base_classification(image)
    assert stats.num_parameters == params and stats.gmacs == pytest.approx(gmacs, rel=1e-9)
    assert round(stats.params_millions) == 87  # README: 87M


@pytest.mark.parametrize(
    "name",
    [
        "beit_base_patch16_224_pt22k_ft22kto1k",
        "beit_base_patch16_224_pt22k",
        "beit_base_patch16_640_pt22k_ft22ktoade20k",
    ],
)
def test_release_cards(name):
    entry = RELEASED_CHECKPOINTS[name]
    card = ModelCard(str(render_release_card(entry)))
    assert card.data.license == "mit"
    assert card.data.library_name == ("hf_beit" if entry.task == "segmentation" else "transformers")
    assert (
        card.data.pipeline_tag
        == {
            "mim": "image-feature-extraction",
            "classification": "image-classification",
            "segmentation": "image-segmentation",
        }[entry.task]
    )
    results = card.data.eval_results or []
    assert [(r.metric_type, r.metric_value) for r in results] == [(m.type, m.value) for m in entry.metrics]
    for section in (
        "## Model details",
        "## Uses",
        "## Limitations",
        "## Training",
        "## Evaluation",
        "## Technical specifications",
        "## Citation",
    ):
        assert section in card.text
    assert entry.url in card.text
    committed = CARDS / entry.repo_name / "README.md"
    assert committed.read_text() == str(render_release_card(entry)), (
        "regenerate: python conversion/generate_model_cards.py"
    )


def test_every_release_has_a_committed_card():
    for entry in RELEASED_CHECKPOINTS.values():
        card = ModelCard.load(CARDS / entry.repo_name / "README.md")
        assert card.data.model_name == entry.repo_name and "Parameters" in card.text


def test_model_name_fixes_labels_preprocessing_and_card(tmp_path, monkeypatch):
    """A registry conversion end to end, with the registry's "base" size shrunk so the weights stay tiny."""
    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
    monkeypatch.setitem(MODEL_SIZES, "base", tiny)
    torch.manual_seed(0)
    state = make_backbone(depth=2, window=14, patch=16) | {
        "fc_norm.weight": torch.ones(32),
        "fc_norm.bias": torch.zeros(32),
        "head.weight": torch.randn(1000, 32) * 0.1,
        "head.bias": torch.zeros(1000),
    }
    checkpoint = tmp_path / "beit_base_patch16_224_pt22k_ft22kto1k.pth"
    torch.save({"model": state}, checkpoint)
    result = convert_checkpoint(
        checkpoint,
        tmp_path / "out",
        model_name="beit-base-patch16-224",
        progress=False,
        log=lambda message: None,
        repo_id="org/beit-base-patch16-224",
    )
    assert result.config.id2label[281] == "tabby, tabby cat" and result.timm_max_abs_diff <= 1e-4
    processor = transformers.BeitImageProcessor.from_pretrained(result.output)
    assert processor.crop_size["height"] == 224 and list(processor.image_mean) == [0.5, 0.5, 0.5]
    card = ModelCard.load(result.output / "README.md")
    assert [r.metric_value for r in card.data.eval_results] == [85.2, 97.6] and card.data.license == "mit"
    assert 'from_pretrained("org/beit-base-patch16-224")' in card.text
    assert card.data.base_model == "org/beit-base-patch16-224-pt22k-ft22k"
    python = [code for lang, code in _FENCE.findall(card.text) if lang == "python"]
    assert len(python) == 3
    _, printed = _run_python(python[0], "org/beit-base-patch16-224", result.output)
    assert len(printed.splitlines()) == 3 and all(
        line.rsplit(": ", 1)[0] in result.config.id2label.values() for line in printed.splitlines()
    )
    for code in python[1:]:
        _run_python(code, "org/beit-base-patch16-224", result.output)


@pytest.mark.parametrize("name", ["beit_base_patch16_640_pt22k_ft22ktoade20k", "beitv2_base_patch16_224_pt1k_ftade20k"])
def test_ade20k_card_states_the_keep_ratio_resize(name):
    """The card's resize is mmcv's keep-ratio rule (computed here from mmcv's formula) on the example photo."""
    entry = RELEASED_CHECKPOINTS[name]
    card = str(render_release_card(entry))
    width, height = 640, 427  # sklearn's china.jpg
    long, short = 4 * entry.image_size, entry.image_size
    scale = min(long / max(width, height), short / min(width, height))
    expected = (int(width * scale + 0.5), int(height * scale + 0.5))
    assert f"the 640x427 example photo becomes {expected[0]}x{expected[1]}" in card
    assert f"fits {long}x{short}" in card and "no squashing to a square" in card
    processor = entry.family.preprocessor("segmentation", entry.image_size)
    assert not processor.do_center_crop and processor.size == {"shortest_edge": short, "longest_edge": long}


def test_stock_transformers_taps_as_the_cards_say(tmp_path):
    """Stock transformers' UPerNet input for out_indices i is the output of 0-based block i - STOCK_TAP_SHIFT."""
    config = transformers.BeitConfig(hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=37,
                                     image_size=32, patch_size=8, num_labels=3, out_indices=[2, 3, 4, 5])
    model = transformers.BeitForSemanticSegmentation(config).eval()
    block_outputs, fed = {}, []
    for index, layer in enumerate(model.beit.layers):
        layer.register_forward_hook(lambda module, args, out, index=index: block_outputs.__setitem__(index, out))
    model.fpn.register_forward_pre_hook(lambda module, args: fed.append(args[0]))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    for tap, features in zip(config.out_indices, fed[0]):
        tokens = features.flatten(2).transpose(1, 2)
        assert torch.equal(tokens, block_outputs[tap - STOCK_TAP_SHIFT][:, 1:])
    note = stock_taps_note([3, 5, 7, 11])
    assert f"{ {1: 'one block', 2: 'two blocks'}[STOCK_TAP_SHIFT] } earlier" in note
    card = str(render_release_card(RELEASED_CHECKPOINTS["beit_base_patch16_640_pt22k_ft22ktoade20k"]))
    assert card.count("earlier") == 1 and note in card


def test_base_model_names_the_registry_parent():
    """In the committed cards; the namespace follows the card's repo id."""
    for entry in RELEASED_CHECKPOINTS.values():
        card = ModelCard.load(CARDS / entry.repo_name / "README.md")
        if entry.task in ("mim", "embeddings"):
            assert entry.parent is None and card.data.base_model is None
            continue
        parent = RELEASED_CHECKPOINTS[entry.parent]
        assert card.data.base_model == parent.repo_name
        assert (parent.family, parent.size) == (entry.family, entry.size) and parent.task != "segmentation"
        assert parent.pretraining == entry.pretraining
    entry = RELEASED_CHECKPOINTS["beitv2_large_patch16_224_pt1k_ft21ktoade20k"]
    card = ModelCard(str(render_release_card(entry, repo_id="ns/x")))
    assert card.data.base_model == "ns/beitv2-large-patch16-224-pt1k-ft21k"


def test_label_sets_are_shown():
    rvl = str(render_release_card(RELEASED_CHECKPOINTS["rvlcdip_dit-b"]))
    labels = id2label_for("rvl-cdip")
    assert len(labels) == 16 and all(f"{i} = {name}" in rvl for i, name in labels.items())
    imagenet = str(render_release_card(RELEASED_CHECKPOINTS["beit_base_patch16_224_pt22k_ft22kto1k"]))
    assert "1000 classes (ImageNet-1k, WordNet lemmas), e.g. 0 = tench, Tinca tinca;" in imagenet
    assert "`id2label` in `config.json`" in imagenet
    assert "label set below" not in imagenet
    ade = str(render_release_card(RELEASED_CHECKPOINTS["beit_base_patch16_640_pt22k_ft22ktoade20k"]))
    assert "150 classes (ADE20k SceneParsing; background/unlabelled is ignored), e.g. 0 = wall;" in ade


def test_licence_sentence_matches_the_metadata():
    for entry in RELEASED_CHECKPOINTS.values():
        card = ModelCard.load(CARDS / entry.repo_name / "README.md")
        licence = card.text.split("## License\n\n", 1)[1].split("\n", 1)[0]
        if entry.family.code_repo == "microsoft/unilm":
            assert card.data.license == "mit" and "repository licence is MIT" in licence
            assert "does not relicense" in licence and "`license: mit`" in licence
        else:
            assert card.data.license == "other" and "CC-BY-NC" in licence


def test_an_unknown_checkpoints_card_loads_the_folder_it_was_written_to(tmp_path):
    from test_conversion_reference import make_mim_checkpoint

    from hf_beit.conversion import convert_checkpoint

    torch.manual_seed(0)
    torch.save({"model": make_mim_checkpoint(depth=2)}, tmp_path / "ckpt.pth")
    out = tmp_path / "my-mim"
    convert_checkpoint(tmp_path / "ckpt.pth", out, progress=False, log=lambda message: None)
    card = (out / "README.md").read_text()
    assert 'from_pretrained("my-mim")' in card and 'from_pretrained("ckpt")' not in card
    assert "the checkpoint `ckpt`" in card  # the prose still names what was converted
