"""The results notebook runs headless on the outputs of a `tiny`-preset run and redraws Tables 1, 2 and Fig. 5."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "results.ipynb"


def test_results_notebook_executes_on_a_tiny_run(tiny_project, monkeypatch):
    monkeypatch.setenv("GB_KEDRO_PROJECT", str(tiny_project))
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    html = [
        o["data"]["text/html"]
        for o in outputs
        if o.get("output_type") == "execute_result" and "text/html" in o.get("data", {})
    ]
    assert any("Random initialisation" in h for h in html)  # Table 1
    assert any("occurrence" in h and "symbol" in h for h in html)  # Table 2
    assert any("image/png" in o.get("data", {}) for o in outputs)  # Fig. 5
