"""PNG figures for MLflow: the coefficient heat map and the confusion matrix. matplotlib, headless."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display: CI, DVC queue workers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from softmax_regression.files import atomic_path  # noqa: E402
from softmax_regression.training.metrics import confusion_matrix  # noqa: E402

if TYPE_CHECKING:
    from torch import Tensor

    from softmax_regression.training.model import Model


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


def coefficient_heat_map(path: str | Path, model: Model) -> None:
    """Weights on standardised features (feature × class): comparable across features, unlike raw units."""
    title = "Coefficients (standardised features)" if bool((model.scale != 1).any()) else "Coefficients"
    heat_map(path, model.W.double().numpy(), model.features, model.classes, title, "class", "feature",
             centred=True)


def confusion_heat_map(path: str | Path, y_true: Tensor, y_pred: Tensor, classes: list[str],
                       accuracy: float) -> None:
    """Counts of each actual class (rows) predicted as each class (columns)."""
    counts = confusion_matrix(y_true, y_pred, len(classes)).numpy()
    heat_map(path, counts, classes, classes, f"Confusion matrix, test set (accuracy {accuracy:.3f})",
             "predicted", "actual", fmt="d")
