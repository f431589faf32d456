"""The Colab notebook runs top to bottom (tiny parameters, synthetic data) without a cell error."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "pix2pix_cityscapes.ipynb")


def test_notebook_has_colab_badge_and_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert "colab.research.google.com" in nb.cells[0].source
    assert any("parameters" in cell.metadata.get("tags", []) for cell in nb.cells)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")  # committed without outputs


def test_notebook_executes_tiny(tmp_path, monkeypatch):
    out = tmp_path / "outputs"
    tiny = {"PIX2PIX_DATASET": "synthetic", "PIX2PIX_EPOCHS": "2", "PIX2PIX_IMAGE_SIZE": "32", "PIX2PIX_BATCH_SIZE": "2",
            "PIX2PIX_STEPS_PER_EPOCH": "2", "PIX2PIX_FILTERS": "4", "PIX2PIX_SYNTHETIC_PAIRS": "6",
            "PIX2PIX_OUTPUT_DIR": str(out), "PIX2PIX_DATA_ROOT": str(tmp_path / "data"),
            "PIX2PIX_EXPORT_FORMATS": "savedmodel,fp32", "PIX2PIX_EXPORT_DIR": str(tmp_path / "exports")}
    for key, value in tiny.items():
        monkeypatch.setenv(key, value)  # the kernel inherits them; the parameters cell reads them
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Runs in notebooks/, as in a checkout; raises CellExecutionError on the first failing cell.
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6  # the pair, two loss plots, the last sample grid, the Keras and TFLite inference grids
    text = "".join(o.get("text", "") for o in outputs)
    assert "Total params" in text or "Total params" in str(outputs)  # model summaries
    assert "epoch" in text and "img_per_sec" in text  # live progress and the metrics table
    assert sorted(os.listdir(out / "samples")) == ["epoch_001.png", "epoch_002.png"]
    assert os.path.getsize(out / "inference.png") > 0 and os.path.getsize(out / "inference_tflite.png") > 0
    assert "tflite_fp32" in text and "max abs difference vs Keras" in text  # the export table and the LiteRT demo
    assert os.listdir(tmp_path / "exports" / "pix2pix" / "1")  # a SavedModel version in TF Serving's layout
