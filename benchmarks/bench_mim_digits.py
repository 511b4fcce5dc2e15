"""BEiT masked image modeling on scikit-learn's digits: does MIM pre-training help with 10% of the labels?

1. Split the 1797 digits (8x8, upsampled bicubically to 32x32) into a pool (70%) and a test set (30%), stratified.
2. Pre-train a tiny BEiT (patch 4 -> 8x8 grid) with ``hf_beit.pretraining.run_pretraining`` on the pool's images
   WITHOUT labels: k-means patch tokenizer fitted on the pool, block-wise masking (75/196 of the grid), unilm
   optimiser settings (AdamW 0.9/0.999, wd 0.05, cosine to 1e-5, clip 3.0) with a shorter schedule.
3. For each seed, draw 10% of the pool as the labelled set (stratified), fine-tune (a) from the MIM weights and
   (b) from scratch with the same architecture and recipe, and measure test accuracy.

Writes ``benchmarks/results_mim_digits.md``. A few CPU minutes:  python benchmarks/bench_mim_digits.py
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torchvision.transforms import v2
from torchvision.transforms.functional import to_tensor
from transformers import get_cosine_schedule_with_warmup

from hf_beit.atomic_io import atomic_write_text
from hf_beit.pretraining import PretrainingOptions, load_digits_images, run_pretraining
from hf_beit.training.init_from import build_model, finetune_config
from hf_beit.training.layer_decay import create_layer_decay_optimizer

MODEL = {
    "image_size": 32, "patch_size": 4, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
    "intermediate_size": 128, "drop_path_rate": 0.1,
}
RESULTS = Path(__file__).with_name("results_mim_digits.md")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Fine-tuning seeds (label draws).")
    parser.add_argument("--pretrain-seed", type=int, default=0)
    parser.add_argument("--pretrain-epochs", type=float, default=30)
    parser.add_argument("--pretrain-lr", type=float, default=1.5e-3)
    parser.add_argument("--kmeans-vocab-size", type=int, default=128)
    parser.add_argument("--finetune-epochs", type=int, default=100)
    parser.add_argument("--finetune-lr", type=float, default=2e-3)
    parser.add_argument("--layer-decay", type=float, default=0.75, help="For the pre-trained model.")
    parser.add_argument("--scratch-layer-decay", type=float, default=1.0)
    parser.add_argument("--long-epochs", type=int, default=0,
                        help="Also compare both with this longer fine-tuning schedule (0 = skip; adds minutes).")
    parser.add_argument("--long-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this tiny model).")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def as_tensors(images) -> torch.Tensor:
    """PIL images -> (N, 3, 32, 32) normalised with mean = std = 0.5 (as in pre-training)."""
    return torch.stack([to_tensor(image) for image in images]).sub_(0.5).div_(0.5)


def finetune(init_from, config, train_x, train_y, test_x, test_y, seed, epochs, lr, layer_decay) -> float:
    """Fine-tune with layer decay, label smoothing 0.1, random resized crops; return test accuracy."""
    torch.manual_seed(seed)
    model = build_model("classification", config, init_from=init_from)
    optimizer = create_layer_decay_optimizer(model, lr, weight_decay=0.05, layer_decay=layer_decay)
    batch_size = 32
    steps_per_epoch = -(-len(train_x) // batch_size)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 5 * steps_per_epoch, epochs * steps_per_epoch)
    crop = v2.RandomResizedCrop(32, scale=(0.6, 1.0), antialias=True)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_x))
        for start in range(0, len(train_x), batch_size):
            index = order[start : start + batch_size]
            pixels = torch.stack([crop(image) for image in train_x[index]])
            loss = F.cross_entropy(model(pixel_values=pixels).logits, train_y[index], label_smoothing=0.1)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            scheduler.step()
    model.eval()
    with torch.no_grad():
        predictions = torch.cat(
            [model(pixel_values=test_x[i : i + 256]).logits.argmax(-1) for i in range(0, len(test_x), 256)]
        )
    return (predictions == test_y).float().mean().item()


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started, cpu_started = time.time(), time.process_time()
    images, labels = load_digits_images(MODEL["image_size"])
    indices = np.arange(len(images))
    pool, test = train_test_split(indices, test_size=0.3, stratify=labels, random_state=0)
    test_x, test_y = as_tensors([images[i] for i in test]), torch.as_tensor(labels[test])

    work = Path(tempfile.mkdtemp(prefix="bench-mim-digits-"))
    try:
        return _run(args, images, labels, pool, test_x, test_y, work / "mim", started, cpu_started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args, images, labels, pool, test_x, test_y, mim_dir, started, cpu_started) -> int:
    pool_images = [images[i] for i in pool]
    steps_per_epoch = -(-len(pool_images) // 64)
    options = PretrainingOptions(
        output_dir=str(mim_dir), model_overrides=dict(MODEL), kmeans_vocab_size=args.kmeans_vocab_size,
        kmeans_patch_size=4, tokenizer_image_size=32, kmeans_fit_images=1000, kmeans_steps=100,
        crop_min_scale=0.5, color_jitter=0.0, hflip=False, epochs=args.pretrain_epochs, batch_size=64,
        learning_rate=args.pretrain_lr, warmup_epochs=5, seed=args.pretrain_seed, logging_steps=steps_per_epoch,
        save_steps=10**9, disable_tqdm=True,
    )
    pretrain_start = time.time()
    summary = run_pretraining(pool_images, options)
    pretrain_seconds = time.time() - pretrain_start
    losses = summary["losses"]
    print(f"MIM loss per epoch: {np.round(losses, 3).tolist()}", flush=True)

    id2label = {i: str(i) for i in range(10)}
    config = finetune_config(mim_dir, "classification", id2label)
    rows = compare(args, config, mim_dir, images, labels, pool, test_x, test_y, args.seeds, args.finetune_epochs)
    long_rows = []
    if args.long_epochs:
        long_rows = compare(args, config, mim_dir, images, labels, pool, test_x, test_y, args.long_seeds,
                            args.long_epochs)
    timing = {"pretrain": pretrain_seconds, "wall": time.time() - started, "cpu": time.process_time() - cpu_started}
    write_results(args, summary, rows, long_rows, len(pool), len(test_y), timing)
    return 0


def compare(args, config, mim_dir, images, labels, pool, test_x, test_y, seeds, epochs) -> list[tuple]:
    """For each seed: draw the labelled subset, fine-tune from the MIM weights and from scratch."""
    rows = []
    for seed in seeds:
        labelled, _ = train_test_split(pool, train_size=args.label_fraction, stratify=labels[pool], random_state=seed)
        train_x, train_y = as_tensors([images[i] for i in labelled]), torch.as_tensor(labels[labelled])
        common = {
            "config": config, "train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y,
            "seed": seed, "epochs": epochs, "lr": args.finetune_lr,
        }
        pretrained = finetune(mim_dir, layer_decay=args.layer_decay, **common)
        scratch = finetune(None, layer_decay=args.scratch_layer_decay, **common)
        rows.append((seed, len(labelled), pretrained, scratch))
        print(f"{epochs} epochs, seed {seed}: {len(labelled)} labels, MIM-pretrained {pretrained:.4f}, "
              f"scratch {scratch:.4f}", flush=True)
    return rows


def _table(rows: list[tuple]) -> str:
    pretrained = np.array([row[2] for row in rows])
    scratch = np.array([row[3] for row in rows])
    lines = ["| seed | labels | MIM-pretrained acc | scratch acc | difference |", "|---|---|---|---|---|"]
    lines += [f"| {seed} | {count} | {p:.4f} | {s:.4f} | {p - s:+.4f} |" for seed, count, p, s in rows]
    lines.append(
        f"| mean | | {pretrained.mean():.4f} | {scratch.mean():.4f} | {pretrained.mean() - scratch.mean():+.4f} |"
    )
    return "\n".join(lines)


def write_results(args, summary, rows, long_rows, pool_size, test_size, timing) -> None:
    losses, accuracies = summary["losses"], summary["mlm_acc"]
    long_section = ""
    if long_rows:
        long_section = f"""
### Longer fine-tuning ({args.long_epochs} epochs, otherwise the same)

{_table(long_rows)}
"""
    command = " ".join(["python benchmarks/bench_mim_digits.py", *sys.argv[1:]])
    text = f"""# MIM pre-training on scikit-learn digits (10% labels)

Produced by `{command}` ({timing['cpu'] / 60:.1f} CPU min, {timing['wall'] / 60:.1f} min wall on a shared
{platform.machine()} box, torch {torch.__version__}, {args.threads} thread(s)). Data: 1797 digits upsampled to 32x32; \
{pool_size} pool images (pre-training uses their
pixels only), {test_size} test images (stratified split, `random_state=0`).

Model: BEiT {MODEL['num_hidden_layers']} layers, hidden {MODEL['hidden_size']}, {MODEL['num_attention_heads']} heads,
MLP {MODEL['intermediate_size']}, patch {MODEL['patch_size']} (8x8 grid), drop path {MODEL['drop_path_rate']}.

## Pre-training (seed {args.pretrain_seed})
- Tokenizer: k-means patch codebook, {summary['vocab_size']} entries, fitted on 4x4-pixel cells of 1000 random crops.
- Masking: {summary['num_masking_patches']} of 64 patches (75/196 scaled), \
blocks of >= {summary['min_mask_patches_per_block']}.
- {summary['global_step']} steps ({args.pretrain_epochs:g} epochs, batch 64), lr {args.pretrain_lr:g}, warmup 5 epochs,
  cosine to 1e-5, AdamW (0.9, 0.999), wd 0.05, clip 3.0; crops scale 0.5-1, no flip/jitter. \
{timing['pretrain']:.0f} s wall.
- MIM loss (mean per epoch): first {losses[0]:.3f} -> last {losses[-1]:.3f} (chance ln {summary['vocab_size']} =
  {np.log(summary['vocab_size']):.3f}); masked-token accuracy {accuracies[0]:.3f} -> {accuracies[-1]:.3f}.

## Fine-tuning with {args.label_fraction:.0%} of the pool's labels
Same recipe for both: batch 32, AdamW lr {args.finetune_lr:g} (cosine, 5 warmup
epochs), wd 0.05, label smoothing 0.1, random resized crops (0.6-1), mean pooling, per-layer relative position bias
(copied from the shared table for the pre-trained model). Layer decay {args.layer_decay} for the pre-trained model,
{args.scratch_layer_decay} from scratch. Seed = label draw + initialisation + data order.

### {args.finetune_epochs} epochs

{_table(rows)}
{long_section}
From scratch, the model is further from convergence on a short schedule, so part of the gap at
{args.finetune_epochs} epochs is faster convergence; the longer schedule (when run) shows how much remains.

Losses per epoch: `{json.dumps([round(v, 3) for v in losses])}`
"""
    atomic_write_text(args.output, text)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
