"""Training and evaluation curves as a PNG in the model's folder (matplotlib, Agg: no display here)."""

from __future__ import annotations

from pathlib import Path


def save_curves(history: list[dict[str, float]], evals: list[dict[str, float]], path: Path, title: str = "") -> Path:
    """Train loss per step, held-out losses and preference accuracy per evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    if history:
        ax_loss.plot([h["step"] for h in history], [h["loss"] for h in history], label="train loss", lw=1)
    for key in ("eval_loss", "eval_dpo_loss"):
        points = [(e["step"], e[key]) for e in evals if key in e]
        if points:
            ax_loss.plot(*zip(*points, strict=True), marker="o", label=key.replace("_", " "))
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    for key in ("preference_accuracy", "reward_accuracy"):
        points = [(e["step"], e[key]) for e in evals if key in e]
        if points:
            ax_acc.plot(*zip(*points, strict=True), marker="o", label=key.replace("_", " "))
    ax_acc.set_ylim(-0.05, 1.05)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("held-out accuracy")
    if ax_acc.lines:
        ax_acc.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
