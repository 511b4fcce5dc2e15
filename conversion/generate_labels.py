"""Regenerate the label files in ``src/hf_beit/data/`` (run once; the outputs are committed).

Provenance:
* ImageNet-1k / ImageNet-22k wnids and WordNet lemmas come from the synset lists that timm ships inside its wheel
  (``timm/data/_info/imagenet_synsets.txt``, ``imagenet22k_synsets.txt``, ``imagenet_synset_to_lemma.txt``).
  ``imagenet22k_synsets.txt`` is the sorted list of the 21841 non-empty ImageNet-22k classes, i.e. the class order
  of an ``ImageFolder`` over the 22k release, which is how unilm's 22k checkpoints enumerate their outputs. It
  equals the 21843-entry fall-2011 list without n03931044 (old id 9205) and n09859684 (old id 15027).
* ADE20k-150 names are the first names of the SceneParsing ``objectInfo150`` classes in mmsegmentation's order
  (the order of the released UPerNet heads after ``reduce_zero_label``); written out below.

Usage: ``python conversion/generate_labels.py [--output src/hf_beit/data]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ADE20K_CLASSES = [
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
]


def _timm_info_dir() -> Path:
    import timm

    return Path(timm.__file__).parent / "data" / "_info"


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_label_files(output: Path) -> dict[str, int]:
    """Write ``imagenet_1k_labels.txt``, ``imagenet_22k_labels.txt`` (``wnid<TAB>lemma``) and ``ade20k_labels.txt``."""
    info = _timm_info_dir()
    lemmas = dict(line.split("\t", 1) for line in _read_lines(info / "imagenet_synset_to_lemma.txt"))
    counts = {}
    for name, source in (("imagenet_1k", "imagenet_synsets.txt"), ("imagenet_22k", "imagenet22k_synsets.txt")):
        wnids = _read_lines(info / source)
        if name == "imagenet_22k" and wnids != sorted(wnids):
            raise RuntimeError(f"{source} is expected to be sorted (ImageFolder order).")
        lines = [f"{wnid}\t{lemmas[wnid]}" for wnid in wnids]
        (output / f"{name}_labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[name] = len(lines)
    if len(ADE20K_CLASSES) != 150:
        raise RuntimeError(f"expected 150 ADE20k classes, have {len(ADE20K_CLASSES)}")
    (output / "ade20k_labels.txt").write_text("\n".join(ADE20K_CLASSES) + "\n", encoding="utf-8")
    counts["ade20k"] = len(ADE20K_CLASSES)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "src" / "hf_beit" / "data"
    parser.add_argument("--output", type=Path, default=default)
    counts = build_label_files(parser.parse_args().output)
    print(", ".join(f"{name}: {count}" for name, count in counts.items()))


if __name__ == "__main__":
    main()
