"""Unlabelled image sources for pre-training: a folder of images, or scikit-learn's digits (ships with sklearn)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from hf_beit.image_loading import IMAGE_EXTENSIONS, InvalidImageError, load_image

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataset", "load_digits_images"]


class ImageFolderDataset(Dataset):
    """All image files under ``root`` (recursively, sorted); items are ``{"image": PIL RGB image}``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Image folder {str(self.root)!r} does not exist or is not a folder.")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not self.files:
            raise ValueError(
                f"No images found under {str(self.root)!r} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})."
            )

    def __len__(self) -> int:
        return len(self.files)

    def check_readable(self, shown: int = 5) -> None:
        """Decode every image once before training (as ``hf-beit train`` does): a corrupt file would otherwise end
        the run at the first batch that holds it. Raises ``InvalidImageError`` naming the unreadable files."""
        broken = []
        for path in self.files:
            try:
                load_image(path, convert_to_rgb=True)
            except (InvalidImageError, OSError) as error:
                broken.append(f"{path.name}: {error}")
        if broken:
            more = f" (and {len(broken) - shown} more)" if len(broken) > shown else ""
            raise InvalidImageError(
                f"{len(broken)} of {len(self.files)} images under {str(self.root)!r} cannot be read{more}: "
                + "; ".join(broken[:shown])
            )

    def __getitem__(self, index: int) -> dict[str, Image.Image]:
        return {"image": load_image(self.files[index], convert_to_rgb=True)}


def load_digits_images(image_size: int = 32) -> tuple[list[Image.Image], np.ndarray]:
    """scikit-learn's 1797 8x8 digits as RGB PIL images upsampled (bicubic) to ``image_size``, and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(digits.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    images = [
        Image.fromarray(array).resize((image_size, image_size), Image.Resampling.BICUBIC).convert("RGB")
        for array in pixels
    ]
    return images, digits.target.astype(np.int64)
