"""Small generated datasets on disk, for tests, examples and smoke runs (coloured squares on noise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230)}


def _noise(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 60, size=(size, size, 3)).astype(np.uint8)


def _square(rng: np.random.Generator, size: int, side: int) -> tuple[slice, slice]:
    top, left = rng.integers(0, size - side + 1, size=2)
    return slice(int(top), int(top) + side), slice(int(left), int(left) + side)


def make_multilabel_folder(root: str | Path, num_images: int = 64, size: int = 32, seed: int = 0) -> Path:
    """Images with any subset of red/green/blue squares; ``metadata.jsonl`` lists the colours (``labels``)."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "train"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(num_images):
        image = _noise(rng, size)
        present = [name for name in COLOURS if rng.random() < 0.5]
        for name in present:
            image[_square(rng, size, size // 2)] = COLOURS[name]
        file_name = f"{index:04d}.png"
        Image.fromarray(image).save(folder / file_name)
        rows.append({"file_name": file_name, "labels": present})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return Path(root)


def make_segmentation_folder(root: str | Path, num_images: int = 48, size: int = 32, seed: int = 0) -> Path:
    """``images/`` + ``masks/``: background 0, a red square 1, a green square 2, a 255 (ignore) border row."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for index in range(num_images):
        image = _noise(rng, size)
        mask = np.zeros((size, size), dtype=np.uint8)
        for class_id, name in ((1, "red"), (2, "green")):
            region = _square(rng, size, int(rng.integers(size // 4, size // 2)))
            image[region] = COLOURS[name]
            mask[region] = class_id
        mask[0, :] = 255
        Image.fromarray(image).save(root / "images" / f"{index:04d}.png")
        Image.fromarray(mask).save(root / "masks" / f"{index:04d}.png")
    return root
