"""Label lists: sizes, gap-free ids, and facts checked against timm's synset lists and known class ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_beit.data import labels


def test_imagenet_1k():
    names, wnids = labels.imagenet_1k_labels(), labels.imagenet_1k_synsets()
    assert len(names) == len(wnids) == 1000 and len(set(wnids)) == 1000
    assert names[0] == "tench, Tinca tinca" and wnids[0] == "n01440764"
    assert names[281] == "tabby, tabby cat" and wnids[281] == "n02123045"
    assert wnids[850] == "n04399382" and names[850].startswith("teddy")


def test_imagenet_22k_is_reenumerated_without_gaps():
    names, wnids = labels.imagenet_22k_labels(), labels.imagenet_22k_synsets()
    assert len(names) == len(wnids) == 21841
    assert wnids == sorted(wnids) and len(set(wnids)) == 21841
    # The two empty fall-2011 classes are gone, so every id from 9205 on moves down by one / two.
    assert "n03931044" not in wnids and "n09859684" not in wnids
    assert names[2397] == "tabby, tabby cat"  # argmax of the 22k model on the COCO cats image
    # All of ImageNet-1k but n04399382 (teddy bear) is in the fall-2011 22k release.
    assert set(labels.imagenet_1k_synsets()) - set(wnids) == {"n04399382"}
    id_map = labels.id2label_for("imagenet-22k")
    assert sorted(id_map) == list(range(21841))


def test_22k_matches_timm_fall11_list_minus_empty_classes():
    timm = pytest.importorskip("timm")
    info = Path(timm.__file__).parent / "data" / "_info"
    fall11 = info.joinpath("imagenet21k_goog_synsets.txt").read_text().split()
    assert len(fall11) == 21843 and fall11[9205] == "n03931044" and fall11[15027] == "n09859684"
    expected = [w for i, w in enumerate(fall11) if i not in (9205, 15027)]
    assert labels.imagenet_22k_synsets() == expected


def test_ade20k():
    names = labels.ade20k_labels()
    assert len(names) == 150 and len(set(names)) == 150
    assert names[:4] == ["wall", "building", "sky", "floor"] and names[7] == "bed" and names[-1] == "flag"
    assert names[12] == "person" and names[20] == "car"
    assert labels.id2label_for("ade20k")[149] == "flag"


def test_unknown_set():
    with pytest.raises(KeyError, match="imagenet-1k"):
        labels.label_set("coco")
