"""Image inputs of the command-line tools and the server: expand files, folders and globs; decode images through
the one decoder (:func:`hf_beit.image_loading.load_image`) under a pixel budget and preprocess them one at a time."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..image_loading import IMAGE_EXTENSIONS, ImageSource, InvalidImageError, load_image
from ..pixel_budget import PixelBudget, processor_geometry

#: Budget of the command-line tools (local files): Pillow's own decompression-bomb threshold, 4 MP after resizing.
CLI_BUDGET = PixelBudget(max_pixels=89_478_485)

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


def output_stems(paths: Sequence[Path]) -> list[str]:
    """One distinct output stem per input: the file stem, with ``-2``, ``-3``... when that name is taken.

    Names are compared case-insensitively (case-insensitive file systems), so ``a/x.png``, ``b/x.png`` and
    ``c/x-2.png`` get three different outputs.
    """
    taken: set[str] = {path.stem.lower() for path in paths}
    used: set[str] = set()
    stems = []
    for path in paths:
        stem, number = path.stem, 1
        while stem.lower() in used or (number > 1 and stem.lower() in taken):
            number += 1
            stem = f"{path.stem}-{number}"
        used.add(stem.lower())
        stems.append(stem)
    return stems


def open_rgb(path: str | os.PathLike, budget: PixelBudget = CLI_BUDGET) -> Image.Image:
    """Open an image file as 8-bit RGB, upright per its EXIF orientation (transparency on white, 16-bit scaled).

    Unreadable files and images above ``budget.max_pixels`` raise ``InvalidImageError`` (a ``ValueError``).
    """
    try:
        return load_image(path, max_pixels=budget.max_pixels, convert_to_rgb=True)
    except (InvalidImageError, OSError) as error:
        raise InvalidImageError(f"Cannot read image {os.fspath(path)!r}: {error}") from error


def load_pixel_values(source: ImageSource, image_processor: Any, budget: PixelBudget, what: str,
                      on_cost: Any = None) -> torch.Tensor:
    """Decode one image and preprocess it: ``(C, H, W)`` float32 pixel values; the decoded image is dropped.

    The budget is applied to the header before decoding: the stored size, and the size the processor's resize would
    give (``ImageTooLargeError``). ``on_cost(ImageCost)`` is called before decoding (the server charges it).
    """
    check = budget.size_check(processor_geometry(image_processor), what, on_cost)
    image = load_image(source, max_pixels=budget.max_pixels, check_size=check)
    try:
        return image_processor(images=image, return_tensors="pt")["pixel_values"][0]
    except (ValueError, RuntimeError) as error:  # e.g. a side resized to 0 pixels by the processor's own rule
        raise InvalidImageError(f"{what} ({image.width}x{image.height}) could not be preprocessed: {error}") from error


def read_pixel_values(path: Path, image_processor: Any, budget: PixelBudget = CLI_BUDGET) -> torch.Tensor:
    """:func:`load_pixel_values` for a local file; every failure raises ``InvalidImageError`` naming the file."""
    try:
        return load_pixel_values(path, image_processor, budget, "the image")
    except (InvalidImageError, OSError) as error:
        raise InvalidImageError(f"Cannot read image {str(path)!r}: {error}") from error
