"""`hf_beit.inference.pipeline` with models given as objects and as local repositories."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from test_inference_utils import LABELS, random_image, save_repo, tiny_classifier, tiny_processor, tiny_segmenter

import hf_beit
from hf_beit.inference.pipelines import pipeline


def _direct_logits(model, image):
    with torch.no_grad():
        return model(**tiny_processor()(images=image, return_tensors="pt")).logits[0]


@pytest.mark.parametrize("as_path", [False, True])
def test_image_classification(tmp_path, as_path):
    model, image = tiny_classifier(), random_image(seed=5)
    target = save_repo(model, tmp_path / "clf") if as_path else model
    classify = pipeline("image-classification", target, image_processor=None if as_path else tiny_processor())
    assert type(classify.model) is hf_beit.BeitForImageClassification  # not transformers' own BEiT class
    assert isinstance(classify.image_processor, type(tiny_processor()))
    result = classify(image, top_k=3)
    probs = _direct_logits(model, image).softmax(-1)
    expected = sorted(zip(LABELS, probs.tolist()), key=lambda pair: -pair[1])
    assert [r["label"] for r in result] == [label for label, _ in expected]
    np.testing.assert_allclose([r["score"] for r in result], [p for _, p in expected], atol=1e-5)


def test_image_classification_multi_label_uses_sigmoid(tmp_path):
    model, image = tiny_classifier(multi_label=True), random_image(seed=6)
    result = pipeline("image-classification", save_repo(model, tmp_path / "ml"))(image, top_k=3)
    scores = {r["label"]: r["score"] for r in result}
    sigmoid = _direct_logits(model, image).sigmoid()
    np.testing.assert_allclose([scores[name] for name in LABELS], sigmoid.tolist(), atol=1e-5)
    assert abs(sum(scores.values()) - 1) > 1e-3  # independent per-class probabilities


@pytest.mark.parametrize("as_path", [False, True])
def test_image_segmentation(tmp_path, as_path):
    model, image = tiny_segmenter(num_labels=4, id2label={i: f"class{i}" for i in range(4)}), random_image(48, 40)
    target = save_repo(model, tmp_path / "seg") if as_path else model
    segment = pipeline("image-segmentation", target, image_processor=None if as_path else tiny_processor())
    assert type(segment.model) is hf_beit.BeitForSemanticSegmentation
    segments = segment(image)
    logits = _direct_logits(model, image)[None]
    expected = torch.nn.functional.interpolate(logits, size=(40, 48), mode="bilinear", align_corners=False)[0]
    expected = expected.argmax(0).numpy()
    assert sorted(s["label"] for s in segments) == sorted(f"class{i}" for i in np.unique(expected))
    for item in segments:
        mask = np.asarray(item["mask"]) > 0
        assert mask.shape == (40, 48)
        assert np.array_equal(mask, expected == int(item["label"][len("class"):]))


@pytest.mark.parametrize("as_path", [False, True])
def test_image_feature_extraction(tmp_path, as_path):
    torch.manual_seed(0)
    model = hf_beit.BeitModel(hf_beit.BeitConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                 intermediate_size=37, image_size=32, patch_size=8,
                                                 use_relative_position_bias=True)).eval()
    image = random_image(seed=7)
    target = save_repo(model, tmp_path / "enc") if as_path else model
    extract = pipeline("image-feature-extraction", target, image_processor=None if as_path else tiny_processor())
    assert type(extract.model) is hf_beit.BeitModel
    with torch.no_grad():
        outputs = model(**tiny_processor()(images=image, return_tensors="pt"))
    np.testing.assert_allclose(np.asarray(extract(image)), outputs.last_hidden_state.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.asarray(extract(image, pool=True)), outputs.pooler_output.numpy(), atol=1e-5)


def test_errors_are_specific(tmp_path):
    with pytest.raises(ValueError, match="Unsupported task"):
        pipeline("object-detection", tiny_classifier(), image_processor=tiny_processor())
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        pipeline("image-classification", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="No image processor"):
        pipeline("image-classification", tiny_classifier())
    assert isinstance(pipeline("image-classification", tiny_classifier(), image_processor=tiny_processor()),
                      transformers.ImageClassificationPipeline)
