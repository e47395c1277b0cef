"""The page's figures, drawn with matplotlib and embedded as SVG data URLs (no outside file,
no font download: text stays text in the page's own sans-serif)."""

from __future__ import annotations

import base64
import io
from typing import Any

from usecases.stores.experiments import Trial
from usecases.stores.registry import Confusion

PRUNED = "#9aa0a6"
BEST = "#d62728"
OTHER = "#1f77b4"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; chosen before pyplot is imported
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "cdl", "font.size": 9,
                         "font.family": "sans-serif"})
    return plt


def _data_url(fig: Any) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def curves(trials: list[Trial], best: int | None) -> str | None:
    """Per trial and epoch: training and validation loss, and validation accuracy. Pruned
    trials in grey, ending in a cross where ASHA stopped them; the registered trial in red."""
    if not any(t.history for t in trials):
        return None
    plt = _pyplot()
    fig, (loss, accuracy) = plt.subplots(1, 2, figsize=(9, 3.2))
    for trial in trials:
        epochs = list(range(1, trial.epochs + 1))
        pruned = trial.state == "pruned"
        color = PRUNED if pruned else BEST if trial.number == best else OTHER
        width = 2.0 if trial.number == best else 1.0
        label = f"trial {trial.number}" + (" (pruned)" if pruned else
                                           " (registered)" if trial.number == best else "")
        for axis, key, style in ((loss, "training_loss", ":"), (loss, "validation_loss", "-"),
                                 (accuracy, "validation_accuracy", "-")):
            values = [epoch.get(key) for epoch in trial.history]
            if any(v is None for v in values):
                continue
            axis.plot(epochs, values, style, color=color, linewidth=width,
                      label=label if (axis, key) == (accuracy, "validation_accuracy") else None)
            if pruned:
                axis.plot(epochs[-1:], values[-1:], "x", color=color, markersize=6)
    loss.set(title="loss (dotted: training, solid: validation)", xlabel="epoch")
    accuracy.set(title="validation accuracy", xlabel="epoch")
    accuracy.legend(fontsize=7, loc="lower right")
    from matplotlib.ticker import MaxNLocator

    for axis in (loss, accuracy):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _data_url(fig)


def confusion(matrix: Confusion) -> str:
    """The test set's confusion matrix, counts in the cells, true class by row."""
    plt = _pyplot()
    n = len(matrix.classes)
    size = max(3.2, 0.45 * n + 1.5)
    fig, axis = plt.subplots(figsize=(size + 0.8, size))
    image = axis.imshow(matrix.matrix, cmap="Blues")
    peak = max((max(row) for row in matrix.matrix), default=0)
    for i, row in enumerate(matrix.matrix):
        for j, count in enumerate(row):
            axis.text(j, i, str(count), ha="center", va="center", fontsize=7,
                      color="white" if count > peak / 2 else "black")
    axis.set_xticks(range(n), matrix.classes, rotation=45, ha="right")
    axis.set_yticks(range(n), matrix.classes)
    axis.set(xlabel="predicted", ylabel="true")
    fig.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    return _data_url(fig)


def class_mix(served: dict[str, int], trained: dict[str, int]) -> str | None:
    """Share of each class among the served predictions beside the training labels'."""
    if not served:
        return None
    plt = _pyplot()
    classes = sorted(set(served) | set(trained))
    total_served, total_trained = sum(served.values()), sum(trained.values())
    fig, axis = plt.subplots(figsize=(max(4.0, 0.6 * len(classes) + 1.5), 2.8))
    positions = range(len(classes))
    axis.bar([p - 0.2 for p in positions], [served.get(c, 0) / total_served for c in classes],
             0.4, label=f"served ({total_served})", color=OTHER)
    if total_trained:
        axis.bar([p + 0.2 for p in positions],
                 [trained.get(c, 0) / total_trained for c in classes], 0.4,
                 label=f"training labels ({total_trained})", color=PRUNED)
    axis.set_xticks(list(positions), classes, rotation=45, ha="right")
    axis.set(ylabel="share")
    axis.legend(fontsize=7)
    axis.grid(axis="y", alpha=0.3)
    return _data_url(fig)
