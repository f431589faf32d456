"""The results page: REPORT_DIR/index.html with the metrics tables and input | generated | target rows."""

from __future__ import annotations

import html
import os

import numpy as np
import tensorflow as tf

from ..files import atomic_path
from .metrics import IMAGE_METRIC_NAMES, SEGMENTATION_METRIC_NAMES

_STYLE = """body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:center}img{image-rendering:pixelated;width:256px}"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _summary(results: dict) -> str:
    """The split-level tables: image metrics, and the FCN-score when it was measured."""
    parts = [_table(list(IMAGE_METRIC_NAMES), [[_fmt(results[name]) for name in IMAGE_METRIC_NAMES]])]
    fcn = results.get("fcn_score")
    if fcn:
        rows = [[html.escape(kind)] + [_fmt(fcn[kind][k]) for k in SEGMENTATION_METRIC_NAMES] for kind in ("generated", "real", "ratio")]
        parts.append("<h2>FCN-score</h2><p>a segmenter trained on real photos, applied to generated and real photos "
                     f"of this split ({html.escape(fcn['segmenter'])}); ratio = generated / real</p>")
        parts.append(_table(["photos", *SEGMENTATION_METRIC_NAMES], rows))
    return "".join(parts)


def write_report(report_dir: str, results: dict, rows: list[dict], plots_dir: str | None = None) -> str:
    """Writes index.html and images/NNNN_<column>.png; links are relative, so the folder can be moved.

    Args:
        report_dir: output folder.
        results: split-level numbers (as in metrics.json).
        rows: per image {"name", "images": {column: uint8 [H, W, C]}, "metrics": {l1, psnr, ssim}}.
        plots_dir: the run's plots/ folder; its PNGs are shown when present.

    Returns:
        The path of index.html.
    """
    image_dir = os.path.join(report_dir, "images")
    os.makedirs(image_dir, exist_ok=True)
    columns = list(rows[0]["images"]) if rows else []
    table_rows = []
    for n, row in enumerate(rows, start=1):
        cells = [f"{n}<br>{html.escape(row['name'])}"]
        for column in columns:
            name = f"{n:04d}_{column.replace(' ', '_')}.png"
            tf.io.write_file(os.path.join(image_dir, name), tf.io.encode_png(np.asarray(row["images"][column])))
            cells.append(f'<img src="images/{name}" alt="{html.escape(column)}">')
        cells += [_fmt(row["metrics"][k]) for k in IMAGE_METRIC_NAMES]
        table_rows.append(cells)
    plots = ""
    if plots_dir and os.path.isdir(plots_dir):
        for name in sorted(p for p in os.listdir(plots_dir) if p.endswith(".png")):
            link = html.escape(os.path.relpath(os.path.join(plots_dir, name), report_dir))
            plots += f'<p><img src="{link}" alt="{html.escape(name)}" style="width:auto;max-width:100%"></p>'
    title = f"pix2pix_tf: {results['split']} split, epoch {results['epoch']}"
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{results['num_images']} images of {html.escape(results['data_dir'])}, "
        f"checkpoint {html.escape(results['checkpoint'])}, "
        f"--test-mode {html.escape(results.get('test_mode', 'eval'))}; "
        "L1 in 0-255 pixel units, PSNR in dB.</p>"
        f"{_summary(results)}<h2>Samples</h2>{_table(['#', *columns, *IMAGE_METRIC_NAMES], table_rows)}"
        f"{'<h2>Training curves</h2>' + plots if plots else ''}</body></html>"
    )
    path = os.path.join(report_dir, "index.html")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(page)
    return path
