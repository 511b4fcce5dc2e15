"""Image inputs of the command-line tools: expand files, folders and globs; open images as RGB."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
_GLOB_CHARS = set("*?[")


def _images_in_folder(folder: Path, recursive: bool) -> list[Path]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def expand_image_paths(inputs: list[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """Turn files, folders (their image files, sorted) and glob patterns into a list of image paths.

    Order follows ``inputs``; duplicates are dropped. Raises ``FileNotFoundError`` naming the first input that
    matches nothing, so a typo is not silently skipped.
    """
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            matches = _images_in_folder(path, recursive)
        elif path.is_file():
            matches = [path]
        elif _GLOB_CHARS & set(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        else:
            raise FileNotFoundError(f"Image input {text!r} does not exist (not a file, folder or glob pattern).")
        if not matches:
            raise FileNotFoundError(f"Image input {text!r} matched no image files "
                                    f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}).")
        found.extend(matches)
    return list(dict.fromkeys(found))


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB, upright per its EXIF orientation; unreadable files raise ``ValueError``."""
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"Cannot read image {os.fspath(path)!r}: {error}") from error
