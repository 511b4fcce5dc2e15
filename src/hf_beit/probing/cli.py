"""``hf-beit probe MODEL [MODEL ...] DATA``: per-block linear probes on frozen features (unilm's recipe)."""

from __future__ import annotations

import argparse
import sys

from ..cli_types import positive_float, positive_int
from ..command_errors import guarded
from ..progress import quiet_command


def _run(args: argparse.Namespace) -> int:
    from ..configuration_beit import BeitConfig
    from ..inference._loading import check_local_repo, load_image_processor
    from ..tasks import TASKS, task_of_config
    from .run import PLOT_NAME, RESULTS_NAME, probe_model, write_probe_outputs
    from .train import ProbeSettings

    settings = ProbeSettings(
        epochs=args.epochs, learning_rate=args.lr, batch_size=args.batch_size, weight_decay=args.weight_decay,
        batch_norm=args.batch_norm, seed=args.seed,
    )
    results = {}
    for path in args.models:
        repo = check_local_repo(path)
        task = task_of_config(BeitConfig.from_pretrained(str(repo))) or TASKS["embeddings"]
        model = task.model_class.from_pretrained(str(repo)).to(args.device)  # its own class: no dropped-key report
        result = probe_model(model, load_image_processor(repo), args.data, settings, args.eval_split, not args.quiet)
        results[repo.name if repo.name not in results else str(repo)] = result
        best = result.best_block
        accuracies = " ".join(f"{value:.3f}" for value in result.accuracy)
        print(f"{repo}: accuracy per block {accuracies}; best block {best} ({result.accuracy[best]:.3f})")
    output = write_probe_outputs(results, args.output, overwrite=args.overwrite)
    print(f"Wrote {output / RESULTS_NAME} and {output / PLOT_NAME}", file=sys.stderr)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``hf-beit probe``."""
    parser = subparsers.add_parser(
        "probe",
        help="linear probes on frozen features of every block (accuracy per block as JSON and a PNG plot)",
        description="Train one linear classifier per block, all at once, on frozen [CLS; mean patch token] "
        "features (unilm's run_linear_eval.py recipe) and report each block's accuracy. Several models are "
        "compared in one plot (e.g. a pre-trained model and a random-init one).",
    )
    parser.add_argument(
        "models", nargs="+", metavar="MODEL", help="local hf_beit repos (any task: the encoder is used)"
    )
    parser.add_argument("data", help='"digits", a folder of class sub-folders per split, or a save_to_disk dataset')
    parser.add_argument("--output", required=True, help="folder for probe_results.json and probe_accuracy.png")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.add_argument("--eval-split", default="validation", help="split the accuracy is measured on")
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--lr", type=positive_float, default=4e-3, help="AdamW learning rate (cosine to 0)")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--batch-norm", action="store_true",
                        help="BatchNorm (no affine) before each head, as MAE's probes (unilm: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, no transformers warnings")
    parser.set_defaults(func=guarded(quiet_command(_run)))
