"""The notebooks: stored executed (small outputs), written by their build script, and they run.

``notebooks/build_notebooks.py`` writes and executes them; the slow test here runs each one
again from scratch in a temporary directory, ignoring the stored outputs.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_script

FOLDER = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
#: what a stored notebook may weigh: a few small PNG plots and short text outputs
MAX_NOTEBOOK_BYTES = 400_000
MAX_TEXT_OUTPUT_CHARS = 20_000
MAX_IMAGES = 2


def _build_script() -> ModuleType:
    pytest.importorskip("nbformat")
    return load_script(FOLDER / "build_notebooks.py")


def _read(path: Path):  # type: ignore[no-untyped-def]
    nbformat = pytest.importorskip("nbformat")
    return nbformat.read(path, as_version=4)


def test_every_notebook_is_written_by_the_build_script() -> None:
    script = _build_script()
    assert {p.stem for p in NOTEBOOKS} == set(script.NOTEBOOKS)
    for path in NOTEBOOKS:
        stored = [(c.cell_type, c.source) for c in _read(path).cells]
        expected = [(c.cell_type, c.source) for c in script.build(script.NOTEBOOKS[path.stem]).cells]
        assert stored == expected, f"{path.name} differs from build_notebooks.py: run it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_executed_with_small_outputs(path: Path) -> None:
    notebook = _read(path)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), \
        "store the notebook executed, top to bottom: python notebooks/build_notebooks.py"
    outputs = [output for cell in code for output in cell.outputs]
    assert outputs, "stored without outputs"
    assert not [o for o in outputs if o.output_type == "error"]
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES
    assert sum("image/png" in o.get("data", {}) for o in outputs) <= MAX_IMAGES
    for output in outputs:
        text = output.get("text", "") or output.get("data", {}).get("text/plain", "")
        assert len(text) <= MAX_TEXT_OUTPUT_CHARS


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path) -> None:
    nbclient = pytest.importorskip("nbclient")
    notebook = _read(path)
    for cell in notebook.cells:  # from scratch: the stored outputs play no part
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, if one fails
    errors = [o for cell in notebook.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
