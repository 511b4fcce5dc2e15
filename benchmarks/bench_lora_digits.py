"""LoRA fine-tuning of hf_beit with PEFT and a plain ``transformers.Trainer``, on scikit-learn's digits.

A tiny BEiT is first trained from scratch on the digits 0-4 (the "pre-trained" model); it is then adapted to the
digits 5-9 (a new 5-class head) in several ways, each with the same epochs and data, and evaluated on the held-out
test images of 5-9:

* LoRA on ``query``/``value`` (+ the new head, ``modules_to_save``), LoRA on all linear layers (+ head);
* the head alone (a linear probe of the frozen model) and full fine-tuning, for comparison;
* LoRA on ``query``/``value`` of a *randomly initialised* model, to show the adapters build on the pre-training.

The LoRA run is also merged (``merge_and_unload``) and re-evaluated. Chance is 20%.

    python benchmarks/bench_lora_digits.py          # writes benchmarks/results_lora_digits.md
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import peft
import torch
import transformers
from torchvision.transforms import v2

import hf_beit
from hf_beit.training.augment import AugmentConfig, build_eval_transform, build_train_transform
from hf_beit.training.datasets import load_digits_dataset
from hf_beit.training.recipes import TINY_PRESET

RESULTS = Path(__file__).with_name("results_lora_digits.md")
BASE_DIGITS, TARGET_DIGITS = range(5), range(5, 10)
AUGMENT = AugmentConfig(crop_scale=(0.7, 1.0), hflip=0.0, rand_augment=None, color_jitter=0.0, random_erasing=0.0)


class DigitsSubset(torch.utils.data.Dataset):
    """The images of some digits, relabelled 0..n-1, through a torchvision transform."""

    def __init__(self, split, digits: range, transform: v2.Compose) -> None:
        keep = [i for i, label in enumerate(split["label"]) if label in digits]
        self.images = [split[i]["image"] for i in keep]
        self.labels = [split[i]["label"] - digits.start for i in keep]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": self.transform(self.images[index]), "labels": self.labels[index]}


def train(model, data, epochs: float, learning_rate: float, output: Path, seed: int) -> float:
    """Train with a plain transformers Trainer (AdamW, cosine schedule); returns the wall time."""
    arguments = transformers.TrainingArguments(
        output, num_train_epochs=epochs, per_device_train_batch_size=32, learning_rate=learning_rate,
        weight_decay=0.05, warmup_steps=0.1, lr_scheduler_type="cosine", save_strategy="no", report_to=[],
        logging_strategy="no", use_cpu=True, seed=seed, disable_tqdm=True, remove_unused_columns=False,
    )  # fmt: skip
    start = time.perf_counter()
    transformers.Trainer(model=model, args=arguments, train_dataset=data).train()
    return time.perf_counter() - start


@torch.no_grad()
def accuracy(model, data) -> float:
    model.eval()
    loader = torch.utils.data.DataLoader(data, batch_size=128)
    hits = sum((model(pixel_values=b["pixel_values"]).logits.argmax(-1) == b["labels"]).sum().item() for b in loader)
    return hits / len(data)


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def with_new_head(base_dir: Path | None, config: hf_beit.BeitConfig) -> hf_beit.BeitForImageClassification:
    if base_dir is None:
        return hf_beit.BeitForImageClassification(config)
    return hf_beit.BeitForImageClassification.from_pretrained(
        base_dir, num_labels=len(TARGET_DIGITS), ignore_mismatched_sizes=True
    )


def lora(model, targets, rank: int):
    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, modules_to_save=["classifier"])
    return peft.get_peft_model(model, config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-epochs", type=float, default=30)
    parser.add_argument("--epochs", type=float, default=20, help="epochs of every adaptation run")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()

    splits = load_digits_dataset(seed=args.seed)
    train_tf, eval_tf = build_train_transform(32, AUGMENT), build_eval_transform(32)
    base_train = DigitsSubset(splits["train"], BASE_DIGITS, train_tf)
    target_train = DigitsSubset(splits["train"], TARGET_DIGITS, train_tf)
    base_test = DigitsSubset(splits["test"], BASE_DIGITS, eval_tf)
    target_test = DigitsSubset(splits["test"], TARGET_DIGITS, eval_tf)
    config = hf_beit.BeitConfig(**{**TINY_PRESET, "num_labels": len(BASE_DIGITS), "drop_path_rate": 0.0})
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        torch.manual_seed(args.seed)
        base = hf_beit.BeitForImageClassification(config)
        seconds = train(base, base_train, args.base_epochs, 2e-3, scratch / "base", args.seed)
        base.save_pretrained(scratch / "base_model")
        rows.append(("pre-training on digits 0-4 (from scratch, full)", trainable(base), accuracy(base, base_test),
                     seconds, "digits 0-4"))  # fmt: skip

        target_config = copy.deepcopy(config)
        target_config.num_labels = len(TARGET_DIGITS)
        runs = {
            "LoRA query/value + head": (scratch / "base_model", ["query", "value"], 5e-3),
            "LoRA all linear layers + head": (scratch / "base_model", "all-linear", 5e-3),
            "head only (frozen model)": (scratch / "base_model", [], 5e-3),
            "full fine-tuning": (scratch / "base_model", None, 1e-3),
            "LoRA query/value + head, random-init model": (None, ["query", "value"], 5e-3),
        }
        for name, (source, targets, learning_rate) in runs.items():
            torch.manual_seed(args.seed)
            model = with_new_head(source, target_config)
            if targets == []:
                for param_name, parameter in model.named_parameters():
                    parameter.requires_grad_(param_name.startswith("classifier"))
            elif targets is not None:
                model = lora(model, targets, args.rank)
            seconds = train(model, target_train, args.epochs, learning_rate, scratch / name[:4], args.seed)
            rows.append((name, trainable(model), accuracy(model, target_test), seconds, "digits 5-9"))
            if name == "LoRA query/value + head":
                merged = model.merge_and_unload()
                rows.append(("  the same, merged (merge_and_unload)", 0, accuracy(merged, target_test), 0.0,
                             "digits 5-9"))  # fmt: skip
    report(args, rows)
    return 0


def report(args, rows) -> None:
    load = os.getloadavg()[0]
    heading = (
        f"\n## {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{args.threads} threads, load {load:.1f}, seed {args.seed}"
    )
    command = (
        f"`python benchmarks/bench_lora_digits.py --base-epochs {args.base_epochs:g} --epochs {args.epochs:g} "
        f"--rank {args.rank} --seed {args.seed} --threads {args.threads}`; peft {peft.__version__}, "
        f"transformers {transformers.__version__}, torch {torch.__version__}"
    )
    lines = [
        heading,
        "",
        command,
        "",
        "| run | trainable parameters | test accuracy | on | training time |",
        "|---|---|---|---|---|",
    ]
    for name, params, acc, seconds, digits in rows:
        lines.append(f"| {name} | {params:,} | {100 * acc:.1f}% | {digits} | {seconds:.0f} s |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.results.exists():
        args.results.write_text("# LoRA fine-tuning of hf_beit on digits (PEFT + transformers.Trainer, CPU)\n\n"
                                + (__doc__ or "").split("\n\n", 1)[1])  # fmt: skip
    with args.results.open("a") as handle:
        handle.write(text)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
