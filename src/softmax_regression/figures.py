"""PNG figures for MLflow: the coefficient heat map and the confusion matrix. matplotlib, headless."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: CI, DVC queue workers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from softmax_regression.files import atomic_path  # noqa: E402


def heat_map(path: str | Path, values: np.ndarray, rows: list[str], columns: list[str], title: str,
             xlabel: str, ylabel: str, fmt: str = ".2f", centred: bool = False) -> None:
    """A labelled heat map of values (len(rows), len(columns)) with each cell's number written in it."""
    height, width = values.shape
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * width, 1.2 + 0.45 * height))
    limit = float(np.abs(values).max()) or 1.0
    image = ax.imshow(values, cmap="RdBu_r" if centred else "Blues", aspect="auto",
                      vmin=-limit if centred else 0, vmax=limit)
    ax.set_xticks(range(width), columns, rotation=30, ha="right")
    ax.set_yticks(range(height), rows)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    for i in range(height):
        for j in range(width):
            strong = abs(values[i, j]) > 0.6 * limit
            ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=8,
                    color="white" if strong else "black")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})  # no version stamp: same bytes
    plt.close(fig)
