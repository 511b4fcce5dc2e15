"""Linear probes per block (``hf-beit probe``) of a MIM-pretrained tiny BEiT vs the same architecture at random init.

1. Pre-train a tiny BEiT (32x32 digits, patch 4 -> 8x8 grid, 4 blocks, hidden 64) with
   ``hf_beit.pretraining.run_pretraining`` on the digits' pixels only (k-means patch tokenizer, block masking,
   unilm's optimiser settings, a short schedule), as ``bench_mim_digits.py`` does.
2. Probe every block of the pre-trained model and of a model freshly initialised as unilm does, with unilm's recipe
   (raw [CLS; mean patch] features, one linear head per block, AdamW lr 4e-3, wd 1e-4, 100 epochs, cosine) and
   with a BatchNorm in front of each head (MAE's probes), on the digits' train split; accuracy on the validation
   and test splits (180 images each).

Writes ``benchmarks/results_probe_digits.md`` and ``benchmarks/probe_digits.png``. A few CPU minutes:
``python benchmarks/bench_probe_digits.py``
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

import torch

import hf_beit
from hf_beit.atomic_io import atomic_write_text
from hf_beit.pretraining import PretrainingOptions, load_digits_images, run_pretraining
from hf_beit.probing import ProbeSettings, plot_accuracies, probe_model

MODEL = {
    "image_size": 32, "patch_size": 4, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
    "intermediate_size": 128, "drop_path_rate": 0.0,
}
HERE = Path(__file__).parent


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain-steps", type=int, default=600)
    parser.add_argument("--kmeans-vocab-size", type=int, default=128)
    parser.add_argument("--probe-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=HERE / "results_probe_digits.md")
    return parser.parse_args(argv)


def _row(name: str, split: str, result) -> str:
    accuracies = " / ".join(f"{value:.3f}" for value in result.accuracy)
    return f"| {name} | {split} | {accuracies} | {result.best_block} | {result.accuracy[result.best_block]:.3f} |"


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started, cpu_started = time.time(), time.process_time()
    work = Path(tempfile.mkdtemp(prefix="bench_probe_"))
    try:
        images, _ = load_digits_images(MODEL["image_size"])
        options = PretrainingOptions(
            output_dir=str(work / "mim"), max_steps=args.pretrain_steps, batch_size=64,
            warmup_steps=args.pretrain_steps // 10, logging_steps=max(args.pretrain_steps // 10, 1), save_steps=10**9,
            disable_tqdm=True, kmeans_vocab_size=args.kmeans_vocab_size, kmeans_fit_images=1000, kmeans_steps=100,
            color_jitter=0.0, hflip=False, crop_min_scale=0.5, seed=args.seed, model_overrides=MODEL,
        )
        pretrain_started = time.time()
        summary = run_pretraining(images, options)
        pretrain_seconds = time.time() - pretrain_started
        processor = hf_beit.BeitImageProcessor.from_pretrained(work / "mim")
        pretrained = hf_beit.BeitForMaskedImageModeling.from_pretrained(work / "mim")
        torch.manual_seed(args.seed)
        random_init = hf_beit.BeitForMaskedImageModeling(pretrained.config)
        results = {}
        for batch_norm in (False, True):
            for split in ("validation", "test"):
                settings = ProbeSettings(epochs=args.probe_epochs, batch_norm=batch_norm, seed=args.seed)
                for name, model in (("MIM-pretrained", pretrained), ("random init", random_init)):
                    results[(batch_norm, split, name)] = probe_model(model, processor, "digits", settings, split, False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plot_accuracies(
        {f"{name}{' + BN' if bn else ''}": r.accuracy for (bn, split, name), r in results.items() if split == "test"},
        HERE / "probe_digits.png", title="Digits: linear probe accuracy per block (test split)",
    )
    lines = [
        "# Linear probes per block on scikit-learn digits: MIM-pretrained vs random init",
        "",
        (f"Produced by `python benchmarks/bench_probe_digits.py` ({time.process_time() - cpu_started:.0f} CPU s, "
        f"{time.time() - started:.0f} s wall on {platform.machine()}, torch {torch.__version__}, {args.threads} "
        "thread(s)). Data: the digits upsampled to 32x32 (`hf_beit.training.datasets.load_digits_dataset`: 1437 "
        "train, 180 validation, 180 test images)."),
        "",
        (f"Model: BEiT {MODEL['num_hidden_layers']} blocks, hidden {MODEL['hidden_size']}, "
        f"{MODEL['num_attention_heads']} heads, patch {MODEL['patch_size']} (8x8 grid)."),
        (f"Pre-training: {summary['global_step']} steps, batch 64, k-means tokenizer with "
        f"{args.kmeans_vocab_size} codes, {summary['num_masking_patches']} of 64 patches masked; MIM loss "
        f"{summary['losses'][0]:.3f} -> {summary['losses'][-1]:.3f}; {pretrain_seconds:.0f} s."),
        (f"Probes: {args.probe_epochs} epochs, AdamW lr 4e-3, wd 1e-4, batch 128, cosine to 0, one head per block "
        "on [CLS; mean of patch tokens] of the raw block output (unilm's run_linear_eval.py); '+ BN' adds a "
        "BatchNorm without affine parameters in front of every head. Random init = unilm's initialisation "
        f"(seed {args.seed})."),
        "",
        "| model | split | accuracy of blocks 0 / 1 / 2 / 3 | best block | best accuracy |",
        "|---|---|---|---|---|",
    ]
    for batch_norm in (False, True):
        lines.append(f"| **{'with BatchNorm' if batch_norm else 'unilm recipe'}** | | | | |")
        lines += [_row(name, split, r) for (bn, split, name), r in results.items() if bn == batch_norm]
    lines += ["", "![probe accuracy per block](probe_digits.png)", "", "Raw results:", "", "```json",
              json.dumps({f"{n} | {s} | bn={b}": r.to_dict() for (b, s, n), r in results.items()}, indent=1),
              "```", ""]
    atomic_write_text(args.output, "\n".join(lines))
    print("\n".join(lines[:22]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
