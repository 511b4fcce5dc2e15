"""Render the model card of every released BEiT checkpoint into ``model_cards/<repo name>/README.md``.

Usage: ``python conversion/generate_model_cards.py [--output model_cards] [--namespace ORG]``.
Parameter counts and GMACs are computed from the models (built on the meta device; no weights needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm.auto import tqdm

from hf_beit.conversion.registry import RELEASED_CHECKPOINTS
from hf_beit.conversion.release_cards import render_release_card


def generate(output: Path, namespace: str | None = None) -> list[Path]:
    written = []
    for entry in tqdm(RELEASED_CHECKPOINTS.values(), desc="model cards", unit="card"):
        repo_id = f"{namespace}/{entry.repo_name}" if namespace else entry.repo_name
        target = output / entry.repo_name / "README.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_suffix(".md.tmp")
        staging.write_text(str(render_release_card(entry, repo_id=repo_id)), encoding="utf-8")
        staging.replace(target)
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "model_cards")
    parser.add_argument("--namespace", help="Hub namespace used in the cards' code examples")
    args = parser.parse_args()
    for path in generate(args.output, args.namespace):
        print(path)


if __name__ == "__main__":
    main()
