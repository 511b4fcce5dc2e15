"""`hf-beit demo`: the main job end to end on an embedded default (scikit-learn's handwritten digits).

Fine-tunes a tiny BEiT from scratch with the BEiT recipe (layer decay, drop path, label smoothing, warmup + cosine),
saves a hub-ready repo, reloads it through a pipeline and classifies held-out digits. Runs offline in about a minute.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from .progress import quiet_command


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="Fine-tune a tiny BEiT on scikit-learn's digits and classify with it.")
    parser.add_argument(
        "--output",
        default=None,
        help="Output directory (default: a new temporary directory; an earlier demo run there is replaced).",
    )
    parser.add_argument(
        "--epochs", type=float, default=15.0, help="Training epochs (15 reach ~89%% validation accuracy)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars (data checks, training, model saving and loading)"
    )
    parser.set_defaults(func=quiet_command(run_demo))


def run_demo(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from .inference.pipelines import pipeline
    from .training.augment import AugmentConfig
    from .training.datasets import load_digits_dataset
    from .training.recipes import train_classification

    torch.set_num_threads(1)  # a 32x32 model is fastest on one thread
    output = Path(args.output or tempfile.mkdtemp(prefix="hf-beit-demo-"))
    print(f"Fine-tuning a tiny BEiT on scikit-learn's digits for {args.epochs:g} epochs -> {output}")
    metrics = train_classification(
        str(output),
        dataset="digits",
        epochs=args.epochs,
        seed=args.seed,
        learning_rate=1e-3,
        batch_size=32,
        warmup=0.05,
        layer_decay=1.0,  # from scratch: no pre-trained layers to protect, no tiny head, no drop path
        head_init_scale=1.0,
        drop_path=0.0,
        # digits must not be flipped or colour-jittered: mild crops only (benchmarks/bench_train_digits.py recipe)
        augment=AugmentConfig(
            crop_scale=(0.7, 1.0), hflip=0.0, rand_augment=None, color_jitter=0.0, random_erasing=0.0
        ),
        disable_tqdm=args.quiet,
        overwrite=True,  # re-running the demo into its folder replaces the earlier demo run
    )
    print(json.dumps({k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}, indent=2))

    classify = pipeline("image-classification", model=str(output / "model"))
    test_split = load_digits_dataset(seed=args.seed)["test"]
    examples = test_split.select(range(8))
    predictions = classify([_as_pil(Image, example["image"]) for example in examples], top_k=1)
    names = test_split.features["label"].names
    hits = 0
    for example, prediction in zip(examples, predictions):
        truth = names[example["label"]]
        hits += prediction[0]["label"] == truth
        print(f"true {truth}  predicted {prediction[0]['label']}  (p={prediction[0]['score']:.2f})")
    print(f"{hits}/{len(examples)} held-out digits classified correctly by the reloaded pipeline.")
    return 0


def _as_pil(image_module, image):
    return image if isinstance(image, image_module.Image) else image_module.fromarray(image)
