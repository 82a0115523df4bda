"""Execute every notebook in notebooks/ and fail on any cell error.

Each notebook runs from an in-memory copy (the stored notebook, with its saved outputs, is never
overwritten) with the notebooks directory as its working directory, on a kernel that runs THIS
interpreter (``sys.executable``): a temporary kernelspec is installed for it, so the result does
not depend on which ``python`` the system's ``python3`` kernelspec would find.

Deselect with ``-m "not notebooks"`` (the marker is declared in pyproject's
``[tool.pytest.ini_options] markers``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p for p in NOTEBOOK_DIR.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
TIMEOUT_S = 300
KERNEL_NAME = "fleetopt-test"

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def kernel_spec_manager(tmp_path_factory):
    """A KernelSpecManager that only knows a kernelspec whose argv[0] is sys.executable."""
    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager

    prefix = tmp_path_factory.mktemp("kernels")
    install(prefix=str(prefix), kernel_name=KERNEL_NAME, display_name="fleetopt test kernel")
    ksm = KernelSpecManager(kernel_dirs=[str(prefix / "share" / "jupyter" / "kernels")])
    spec = ksm.get_kernel_spec(KERNEL_NAME)
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve(), spec.argv
    return ksm


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, kernel_spec_manager, tmp_path):
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=kernel_spec_manager)
    client = nbclient.NotebookClient(
        nb, km=km, kernel_name=KERNEL_NAME, timeout=TIMEOUT_S, allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        # keep the executed copy for inspection; never touch the stored notebook
        out = tmp_path / path.name
        nbformat.write(nb, out)
        pytest.fail(f"{path.name}: a cell raised (executed copy: {out})\n{e}", pytrace=False)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"


def test_notebooks_found():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"
