"""QC thumbnails: the slide with its kept tumour patches outlined (as the paper's Fig. 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from gb_kedro.datasets.slides import open_slide


def qc_figure(
    path: str, slide_id: str, patches: pd.DataFrame, threshold: float, max_px: int, weak_brown_min: float
) -> Figure:
    """A figure: thumbnail, tumour patches outlined in green, scored non-tumour patches with some brown
    in faint yellow, and the counts in the title."""
    slide = open_slide(path, slide_id)
    try:
        w0, h0 = slide.dimensions
        scale = max(w0, h0) / max_px
        thumb = np.asarray(slide.get_thumbnail((int(w0 / scale), int(h0 / scale))).convert("RGB"))
    finally:
        slide.close()
    sx = w0 / thumb.shape[1]
    fig = Figure(figsize=(6, 6 * thumb.shape[0] / thumb.shape[1] + 0.4), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(thumb)
    kept = patches[patches["brown_ratio"] > threshold]
    weak = patches[(patches["brown_ratio"] > weak_brown_min) & (patches["brown_ratio"] <= threshold)]
    for frame, colour, lw in ((weak, "#f2d14b", 0.5), (kept, "#00c853", 1.0)):
        for row in frame.itertuples(index=False):
            ax.add_patch(
                Rectangle(
                    (row.x / sx, row.y / sx),
                    row.size_level0 / sx,
                    row.size_level0 / sx,
                    fill=False,
                    edgecolor=colour,
                    linewidth=lw,
                )
            )
    ax.set_title(
        f"{slide_id}: {len(kept)} tumour patches (brown > {threshold:.0%}) of {len(patches)} scored", fontsize=9
    )
    ax.set_axis_off()
    fig.tight_layout()
    return fig
