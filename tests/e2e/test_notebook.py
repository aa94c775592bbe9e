"""The notebook tutorial runs from top to bottom in a real IPython kernel (nbclient), against the engine it
starts in its own process; its cells assert that pandas and xarray hold the values that were reported and the
file's own values. It is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO, need_modules

NOTEBOOK = REPO / "docs" / "notebooks" / "twin-in-a-notebook.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    need_modules("notebook", "nbformat", hint="pip install -e '.[dev]'")
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source[:60]


@pytest.mark.slow
def test_notebook_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_modules("notebook", "nbclient", "nbformat", "ipykernel", hint="pip install -e '.[dev]'")
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # a kernel that reads no one's profile
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter"))  # its connection file, not in ~
    NotebookClient(notebook, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("twin reach-nb" in h for h in html) and any("run " in h and "finished" in h for h in html)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot
    text = "".join(o.get("text", "") for o in outputs)
    assert "forecast peak" in text
