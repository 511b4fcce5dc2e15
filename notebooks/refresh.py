"""Re-execute the notebooks and store their outputs: ``python notebooks/refresh.py [NAME ...]`` (all by default)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _execution import refresh

if __name__ == "__main__":
    folder = Path(__file__).parent
    names = sys.argv[1:] or sorted(path.stem for path in folder.glob("*.ipynb"))
    for name in names:
        print(f"executing {name} ...", flush=True)
        refresh(folder / f"{name}.ipynb")
