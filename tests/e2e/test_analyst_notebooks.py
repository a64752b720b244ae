"""The analyst notebooks run top to bottom against a demo lakehouse and are committed without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.demo_lake import DemoLake, demo_lake  # noqa: F401 - the shared session fixture

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_three_analyst_notebooks_exist() -> None:
    names = [path.name for path in NOTEBOOKS]
    assert names == ["01_feeds_tour.ipynb", "02_scorecard_deep_dive.ipynb", "03_quality_and_lineage.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    assert all(not cell.outputs and cell.execution_count is None for cell in code), \
        "clear the outputs before committing"
    source = "\n".join(cell.source for cell in code)
    assert re.search(r"^(import bigbilbao|from bigbilbao(\.\w+)* import)", source, re.M)  # the package's readers
    assert "pyspark" not in source and "SparkSession" not in source, "analyst notebooks read without Spark"


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, demo_lake: DemoLake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIGBILBAO_LAKEHOUSE", str(demo_lake.lakehouse))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first failing cell
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    shown = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert len(shown) >= len([c for c in notebook.cells if c.cell_type == "code"]) - 1, "cells should show results"
