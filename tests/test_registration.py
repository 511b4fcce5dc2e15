"""Auto classes and pipelines with hf_beit models, coexisting with transformers' own BEiT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import transformers
from conftest import randomize_, tiny_config
from PIL import Image

import hf_beit


def _photo() -> Image.Image:
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("china.jpg"))


def test_pipeline_image_classification_matches_direct_call():
    labels = {0: "cat", 1: "dog", 2: "bird"}
    model = randomize_(
        hf_beit.BeitForImageClassification(tiny_config(use_relative_position_bias=True, id2label=labels))
    )
    processor = hf_beit.BeitImageProcessor(size={"height": 32, "width": 32})
    classify = transformers.pipeline("image-classification", model=model.eval(), image_processor=processor)
    photo = _photo()
    predictions = classify(photo, top_k=3)
    with torch.no_grad():
        probs = model(**processor(photo, return_tensors="pt")).logits.softmax(-1)[0]
    order = torch.argsort(probs, descending=True)
    assert [p["label"] for p in predictions] == [labels[int(i)] for i in order]
    np.testing.assert_allclose([p["score"] for p in predictions], probs[order].numpy(), atol=1e-6)


def test_auto_registration_routes_only_hf_beit_configs(tmp_path):
    hf_beit.register_auto_classes()
    hf_beit.register_auto_classes()  # idempotent
    ours = transformers.AutoModelForImageClassification.from_config(tiny_config())
    assert isinstance(ours, hf_beit.BeitForImageClassification)
    segmenter = transformers.AutoModelForSemanticSegmentation.from_config(tiny_config(out_indices=[0, 1, 2, 3]))
    assert isinstance(segmenter, hf_beit.BeitForSemanticSegmentation)
    # transformers' own BEiT is untouched (no hijacking of model_type "beit")
    stock_config = transformers.BeitConfig(**tiny_config().to_dict())
    stock = transformers.AutoModelForImageClassification.from_config(stock_config)
    assert type(stock) is transformers.BeitForImageClassification
    ours.save_pretrained(tmp_path)
    assert type(transformers.AutoConfig.from_pretrained(tmp_path)) is transformers.BeitConfig
    # processors are found by the name in preprocessor_config.json: ours must not be handed out for stock repos
    transformers.BeitImageProcessor().save_pretrained(tmp_path)
    assert type(transformers.AutoImageProcessor.from_pretrained(tmp_path)) is transformers.BeitImageProcessor
    assert isinstance(hf_beit.BeitForImageClassification.from_pretrained(tmp_path), hf_beit.BeitForImageClassification)


class _LocalOnlyHub:
    """transformers 5.23's ``AutoBackbone.from_pretrained`` asks the Hub whether a *local* path is a repo (and rejects
    absolute paths as repo ids); answer for local directories without any network."""

    @staticmethod
    def repo_exists(path) -> bool:
        return Path(path).is_dir()


def test_auto_backbone_routes_only_hf_beit_configs(tmp_path, monkeypatch):
    hf_beit.register_auto_classes()
    ours = transformers.AutoBackbone.from_config(tiny_config(out_indices=[1, 3]))
    assert isinstance(ours, hf_beit.BeitBackbone) and ours.out_indices == [1, 3]
    # load_backbone (what transformers' detection/segmentation models call) goes through the same mapping
    from transformers.backbone_utils import load_backbone

    assert isinstance(load_backbone(tiny_config()), hf_beit.BeitBackbone)
    stock_config = transformers.BeitConfig(**{**tiny_config().to_dict(), "out_indices": [1, 3], "out_features": None})
    assert type(transformers.AutoBackbone.from_config(stock_config)) is transformers.BeitBackbone
    transformers.BeitBackbone(stock_config).save_pretrained(tmp_path)
    monkeypatch.setattr(transformers.models.auto.auto_factory, "hf_api", _LocalOnlyHub)
    from_path = transformers.AutoBackbone.from_pretrained(str(tmp_path))
    assert type(from_path) is transformers.BeitBackbone and from_path.out_features == ["stage1", "stage3"]
