"""`fraud evaluate --plots DIR`: the figures an analyst looks at first, as PNG files.

Precision-recall and ROC curves, score histograms by label, the block rate (and the frauds caught)
against a score threshold, and the latency histogram. matplotlib draws them with its file-only
backend (Agg: no display needed); it comes with the `plots` extra (`pip install '.[plots]'`, part
of the checkout's `.venv`), and without it the command says so in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fraud.errors import UserError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError(
            "--plots needs matplotlib: pip install 'fraudstream[plots]' (or .[plots] in a checkout)"
        ) from None
    matplotlib.use("Agg")  # files only: works without a display, on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def write_plots(directory: str, y: np.ndarray, score: np.ndarray, latency_ms: np.ndarray) -> list[str]:
    """One PNG per figure in `directory`; returns their paths."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{directory}: cannot create the plots directory ({exc.strerror or exc})") from None
    written: list[str] = []

    def save(fig, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))

    both = 0 < y.sum() < len(y)
    if both:
        p, r, _ = precision_recall_curve(y, score)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(r, p)
        ax.axhline(y.mean(), color="grey", linestyle=":", label=f"fraud rate {y.mean():.2%}")
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="upper right")
        save(fig, "precision_recall.png")

        fpr, tpr, _ = roc_curve(y, score)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
        save(fig, "roc.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 51)
    for label, name in ((0, "genuine"), (1, "fraud")):
        part = score[y == label]
        if len(part):
            ax.hist(part, bins=bins, alpha=0.6, label=f"{name} ({len(part):,})", density=True)
    ax.set(xlabel="score", ylabel="density", yscale="log", title="Scores by label")
    ax.legend()
    save(fig, "score_histogram.png")

    grid = np.linspace(0, 1, 201)
    order = np.sort(score)
    above = 1 - np.searchsorted(order, grid, side="left") / len(score)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, above, label="share of payments at or above")
    if y.sum():
        frauds = np.sort(score[y == 1])
        ax.plot(grid, 1 - np.searchsorted(frauds, grid, side="left") / len(frauds), label="share of frauds caught")
    ax.set(xlabel="score threshold", ylabel="share", yscale="log", title="Block rate against threshold")
    ax.legend()
    save(fig, "block_rate.png")

    lat = latency_ms[np.isfinite(latency_ms)]
    if len(lat):
        fig, ax = plt.subplots(figsize=(6, 4))
        hi = max(float(np.percentile(lat, 99.9)), 1e-3)
        ax.hist(np.clip(lat, 0, hi), bins=80)
        for q, style in ((50, "--"), (99, ":")):
            v = float(np.percentile(lat, q))
            ax.axvline(v, color="black", linestyle=style, label=f"p{q} {v:.3f} ms")
        ax.set(xlabel="latency ms (clipped at p99.9)", ylabel="decisions", yscale="log", title="Latency")
        ax.legend()
        save(fig, "latency.png")
    return written
