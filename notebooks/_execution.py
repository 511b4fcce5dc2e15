"""Run a notebook in a fresh kernel, and tell whether its stored outputs belong to its current code.

``python notebooks/refresh.py [NAME ...]`` re-executes the notebooks and stores their outputs (plots included) so that
they read on the web; ``tests/test_notebooks.py`` executes them again and checks the stored outputs are fresh.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

DIGEST_KEY = "hf_beit_source_digest"


def source_digest(notebook: nbformat.NotebookNode) -> str:
    """SHA-256 of the code cells' sources: the stored outputs are fresh when it equals the stored digest."""
    code = "\n\x00\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()


def execute(notebook: nbformat.NotebookNode, working_dir: str | os.PathLike | None = None) -> nbformat.NotebookNode:
    """Execute ``notebook`` in place (fresh python3 kernel, cwd ``working_dir`` or a temporary folder)."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = str(working_dir or scratch)
        NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": folder}}).execute()
    return notebook


def refresh(path: str | os.PathLike) -> None:
    """Execute the notebook at ``path`` and store it with its outputs and the digest of its sources."""
    notebook = nbformat.read(path, as_version=4)
    execute(notebook)
    for cell in notebook.cells:  # timings change every run; they are not part of what a reader learns
        cell.metadata.pop("execution", None)
    notebook.metadata[DIGEST_KEY] = source_digest(notebook)
    nbformat.write(notebook, Path(path))
