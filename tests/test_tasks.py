"""The task table and the task check: a repo of one task is never served for another with a random head."""

from __future__ import annotations

import pytest
import torch
from conftest import randomize_, tiny_config
from PIL import Image

import hf_beit
from hf_beit.cli import main
from hf_beit.tasks import TASKS, WrongTaskError, get_task, task_of_state_dict


def test_every_task_names_a_real_class_and_pipeline_names_resolve():
    for task in TASKS.values():
        assert task.model_class.__name__ == task.architecture
        assert get_task(task.name) is task
        if task.pipeline:
            assert get_task(task.pipeline) is task
    with pytest.raises(ValueError, match=r"Unknown task 'detection'; hf_beit knows: .*classification"):
        get_task("detection")


def test_task_of_state_dict_reads_the_head():
    def keys(cls, **overrides):
        return list(cls(tiny_config(**overrides)).state_dict())

    segmentation = {"use_relative_position_bias": True, "out_indices": [0, 1, 2, 3], "pool_scales": [1, 2]}
    assert task_of_state_dict(keys(hf_beit.BeitForMaskedImageModeling, use_mask_token=True)).name == "mim"
    assert task_of_state_dict(keys(hf_beit.BeitForImageClassification)).name == "classification"
    assert task_of_state_dict(keys(hf_beit.BeitForSemanticSegmentation, **segmentation)).name == "segmentation"
    assert task_of_state_dict(keys(hf_beit.BeitModel)).name == "embeddings"


@pytest.fixture
def repos(tmp_path):
    """A MIM repo and a classification repo, each with its processor."""
    processor = hf_beit.BeitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    made = {}
    for name, cls, overrides in (
        (
            "mim",
            hf_beit.BeitForMaskedImageModeling,
            {"use_shared_relative_position_bias": True, "use_mask_token": True},
        ),
        ("classification", hf_beit.BeitForImageClassification, {"use_relative_position_bias": True}),
    ):
        model = randomize_(cls(tiny_config(**overrides)))
        model.save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
        made[name] = tmp_path / name
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "photo.png")
    return made, tmp_path / "photo.png"


def test_predict_refuses_a_mim_repo_in_one_line(repos, capsys):
    made, photo = repos
    assert main(["predict", str(made["mim"]), str(photo)]) == 2
    error = capsys.readouterr().err.strip()
    assert "is a masked image modeling model (BeitForMaskedImageModeling), not a image classification model" in error
    assert "fine-tune it first" in error and len(error.splitlines()) == 1


def test_segment_refuses_a_classification_repo(repos, tmp_path, capsys):
    made, photo = repos
    assert main(["segment", str(made["classification"]), str(photo), "--output", str(tmp_path / "masks")]) == 2
    assert "is a image classification model (BeitForImageClassification)" in capsys.readouterr().err
    assert not (tmp_path / "masks").exists()


def test_pipeline_refuses_a_repo_without_trained_head(repos, tmp_path):
    """A config that claims classification but whose weights have no classifier is caught on the weights."""
    made, _ = repos
    model = hf_beit.BeitForImageClassification.from_pretrained(made["classification"])
    state = {key: value for key, value in model.state_dict().items() if not key.startswith("classifier.")}
    model.save_pretrained(tmp_path / "headless", state_dict=state)
    with pytest.raises(WrongTaskError, match="no trained image classification head"):
        hf_beit.pipeline("image-classification", model=str(tmp_path / "headless"))
    # the bare encoder may come from any repo
    features = hf_beit.pipeline("image-feature-extraction", model=str(made["mim"]))
    assert torch.as_tensor(features(Image.new("RGB", (32, 32)))).shape[-1] == 32
