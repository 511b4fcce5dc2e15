"""Every notebook in notebooks/ executes end to end (offline, tiny models) in a fresh python3 kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = {"inference", "segmentation", "fine_tuning", "conversion_and_push", "mim_pretraining"}


def test_all_topics_have_a_notebook():
    assert {path.stem for path in NOTEBOOKS.glob("*.ipynb")} >= EXPECTED


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.stem)
def test_notebook_executes(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells, f"{path.name} has no code"
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells), (
        f"{path.name} is stored with outputs; clear them before committing"
    )
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError (with the cell and traceback) if any cell fails
    errors = [out for cell in code_cells for out in cell.outputs if out.output_type == "error"]
    assert not errors
    assert all(cell.execution_count is not None for cell in code_cells)
