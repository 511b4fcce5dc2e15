"""Segmentation test-time augmentation (``hf-beit segment --tta``): single scale vs mmseg's multi-scale + flip.

1. Train the tiny BEiT UPerNet (``hf-beit train segmentation``'s "tiny" preset, 32x32 inputs) on generated scenes:
   noise with a red (class 1) and a green (class 2) square, background 0 (``hf_beit.training.synthetic``).
2. Segment held-out scenes drawn at another size (64x48, squares of 6-30 px, so objects appear at other scales than
   in training) with 32x32 sliding windows (stride 21) at the image's own size, once single-scale and once with
   ``tta_scales`` = mmseg's ratios 0.5-1.75 of the image size plus horizontal flips (12 views).
3. Report mIoU and pixel accuracy over all held-out pixels, and the time per image.

Writes ``benchmarks/results_tta_segmentation.md``. A few CPU minutes:  python benchmarks/bench_tta_segmentation.py
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import hf_beit
from hf_beit.atomic_io import atomic_write_text
from hf_beit.inference.segment import segment_image
from hf_beit.inference.tta import MMSEG_RATIOS
from hf_beit.training import AugmentConfig
from hf_beit.training.recipes import train_segmentation
from hf_beit.training.synthetic import COLOURS, make_segmentation_folder

HERE = Path(__file__).parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=256)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--eval-images", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=HERE / "results_tta_segmentation.md")
    return parser.parse_args(argv)


def held_out_scenes(count: int, seed: int, width: int = 64, height: int = 48) -> list[tuple[Image.Image, np.ndarray]]:
    """Noise scenes with a red and a green square of 6-30 px and their class maps (0 background, 1 red, 2 green)."""
    rng = np.random.default_rng(seed + 1000)
    scenes = []
    for _ in range(count):
        image = rng.integers(0, 60, size=(height, width, 3)).astype(np.uint8)
        mask = np.zeros((height, width), dtype=np.int64)
        for class_id, name in ((1, "red"), (2, "green")):
            side = int(rng.integers(6, 31))
            top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
            image[top : top + side, left : left + side] = COLOURS[name]
            mask[top : top + side, left : left + side] = class_id
        scenes.append((Image.fromarray(image), mask))
    return scenes


def scores(confusion: np.ndarray) -> tuple[float, float]:
    """(mIoU, pixel accuracy) of a confusion matrix (rows: truth, columns: prediction)."""
    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
    return float(np.mean(np.diag(confusion) / np.maximum(union, 1))), float(np.trace(confusion) / confusion.sum())


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started, cpu_started = time.time(), time.process_time()
    work = Path(tempfile.mkdtemp(prefix="bench_tta_"))
    try:
        make_segmentation_folder(work / "scenes", num_images=args.train_images, seed=args.seed)
        metrics = train_segmentation(
            str(work / "run"), dataset=str(work / "scenes"), validation_fraction=0.1, max_steps=args.train_steps,
            eval_steps=args.train_steps, batch_size=16, learning_rate=3e-3, layer_decay=1.0, warmup=20,
            drop_path=0.0, logging_steps=50, disable_tqdm=True, seed=args.seed,
            augment=AugmentConfig(crop_scale=(0.5, 1.0), rand_augment=None, color_jitter=0.0),
        )
        model = hf_beit.BeitForSemanticSegmentation.from_pretrained(work / "run" / "model").eval()
        processor = hf_beit.BeitImageProcessor.from_pretrained(work / "run" / "model")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    confusion = {"single-scale": np.zeros((3, 3), np.int64), "ms+flip (TTA)": np.zeros((3, 3), np.int64)}
    seconds = dict.fromkeys(confusion, 0.0)
    for image, mask in held_out_scenes(args.eval_images, args.seed):
        for name, tta in (("single-scale", None), ("ms+flip (TTA)", MMSEG_RATIOS)):
            tick = time.perf_counter()
            prediction = segment_image(model, processor, image, crop_size=32, stride=21, resize_scale=None,
                                       tta_scales=tta).numpy()
            seconds[name] += time.perf_counter() - tick
            confusion[name] += np.bincount(3 * mask.ravel() + prediction.ravel(), minlength=9).reshape(3, 3)
    lines = [
        "# Segmentation test-time augmentation on generated scenes",
        "",
        (f"Produced by `python benchmarks/bench_tta_segmentation.py` ({time.process_time() - cpu_started:.0f} CPU s, "
        f"{time.time() - started:.0f} s wall on {platform.machine()}, torch {torch.__version__}, {args.threads} "
        "thread(s))."),
        "",
        (f"Model: the `tiny` UPerNet preset (6 blocks, hidden 96, 32x32 inputs) trained {args.train_steps} steps "
        f"(batch 16, lr 3e-3) on {args.train_images} generated 32x32 scenes; validation mIoU after training "
        f"{metrics['eval_mean_iou']:.3f}."),
        (f"Held-out: {args.eval_images} scenes of 64x48 with squares of 6-30 px (objects at other scales than in "
        "training); 32x32 windows, stride 21, at the image's own size (`resize_scale=None`). TTA: ratios "
        f"{', '.join(str(r) for r in MMSEG_RATIOS)} of the image size, each also flipped (12 views), softmax "
        "probabilities averaged at the original size (mmseg `aug_test`)."),
        "",
        "| inference | mIoU | pixel accuracy | seconds per image |",
        "|---|---|---|---|",
    ]
    for name, matrix in confusion.items():
        miou, accuracy = scores(matrix)
        lines.append(f"| {name} | {miou:.4f} | {accuracy:.4f} | {seconds[name] / args.eval_images:.3f} |")
    lines.append("")
    atomic_write_text(args.output, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
