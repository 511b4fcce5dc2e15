"""Every notebook in notebooks/ is stored with the outputs of its current code (so it reads on the web, plots
included) and still executes end to end (offline, tiny models) in a fresh python3 kernel, producing the same kinds
of output. ``python notebooks/refresh.py`` re-executes and stores them."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
from _execution import DIGEST_KEY, execute, source_digest

EXPECTED = {"inference", "segmentation", "fine_tuning", "multi_label", "conversion_and_push", "mim_pretraining"}


def _kinds(cell) -> list[str]:
    """What a cell shows: stream text, images, errors (values may change from run to run; kinds may not)."""
    kinds = []
    for output in cell.outputs:
        if output.output_type == "error":
            kinds.append("error")
        elif "image/png" in output.get("data", {}):
            kinds.append("image")
        else:
            kinds.append("text")
    return sorted(set(kinds))


def test_all_topics_have_a_notebook():
    assert {path.stem for path in NOTEBOOKS.glob("*.ipynb")} >= EXPECTED


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.stem)
def test_notebook_is_stored_fresh_and_executes(path, tmp_path):
    stored = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in stored.cells if cell.cell_type == "code"]
    assert code_cells, f"{path.name} has no code"
    assert stored.metadata.get(DIGEST_KEY) == source_digest(stored), (
        f"{path.name}: its code changed since its outputs were stored; run python notebooks/refresh.py {path.stem}"
    )
    assert all(cell.execution_count is not None for cell in code_cells), f"{path.name} is stored without outputs"
    assert any("image" in _kinds(cell) for cell in code_cells), f"{path.name} shows no picture"
    executed = execute(copy.deepcopy(stored), tmp_path)  # raises CellExecutionError if any cell fails
    fresh_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    assert not [cell for cell in fresh_cells if "error" in _kinds(cell)]
    assert [_kinds(cell) for cell in fresh_cells] == [_kinds(cell) for cell in code_cells]
