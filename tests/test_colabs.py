"""The notebooks in colabs/ run top to bottom (their code cells, in order, in one namespace)."""

import json
import os

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

COLABS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "colabs")


@pytest.mark.parametrize("name", ["ranking_operators.ipynb", "pretrain_and_probe.ipynb"])
def test_notebook_runs_top_to_bottom(name, monkeypatch):
  with open(os.path.join(COLABS, name)) as f:
    notebook = json.load(f)
  cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
  assert cells
  monkeypatch.setattr(plt, "show", lambda *a, **k: plt.close("all"))
  namespace = {"__name__": "__main__"}
  for i, cell in enumerate(cells):
    source = "".join(cell["source"])
    assert not any(line.lstrip().startswith(("!", "%")) for line in source.splitlines()), "no shell magics"
    exec(compile(source, f"{name}[cell {i}]", "exec"), namespace)  # pylint: disable=exec-used
