"""The frontier figure: accuracy vs mean samples and vs mean tokens on the held-out split."""
from __future__ import annotations

from pathlib import Path

from .frontier import pareto

COLORS = {"fixed": "black", "stopping": "tab:blue", "binned": "tab:green", "allocate": "tab:red"}


def plot_frontier(result, path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    chosen = {id(c) for c in result.chosen.values()}
    for ax, cost, xlabel in ((axes[0], "mean_samples", "mean samples per prompt"),
                             (axes[1], "mean_tokens", "mean generated tokens per prompt")):
        for fam in ("fixed", "stopping", "binned", "allocate"):
            cands = result.family(fam)
            if not cands:
                continue
            pts = [c.point("held") for c in cands]
            if fam == "fixed":
                pts = sorted(pts, key=lambda p: p[cost])
                ax.plot([p[cost] for p in pts], [p["accuracy"] for p in pts], "-o", color=COLORS[fam], ms=3,
                        label="fixed-N SC")
            else:
                ax.scatter([p[cost] for p in pts], [p["accuracy"] for p in pts], s=5, alpha=0.2, color=COLORS[fam])
                front = pareto(pts, cost)
                ax.step([p[cost] for p in front], [p["accuracy"] for p in front], where="post", color=COLORS[fam],
                        label=f"{fam} (Pareto)")
            marked = [c.point("held") for c in cands if id(c) in chosen]
            if marked:
                ax.scatter([p[cost] for p in marked], [p["accuracy"] for p in marked], marker="*", s=140,
                           color=COLORS[fam], edgecolor="k", zorder=5)
        if cost == "mean_samples":
            ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("held-out accuracy vs compute (stars: the policy written for each budget)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
