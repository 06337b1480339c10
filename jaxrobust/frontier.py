"""The clean-vs-robust frontier of a robustness study: every trained model (method × seed) as a point
(clean accuracy, accuracy under attack), one panel per attack, and the models no other model beats
on both axes.

A model is on the frontier when no other model is at least as accurate clean and under attack and
strictly more accurate on one of the two. Methods trade clean accuracy for robustness; the frontier
shows which trades are efficient without choosing a weight between the two.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class Point:
    method: str
    seed: int
    clean: float  # accuracy on the attack's sample, in [0, 1]
    attacked: float  # accuracy under the attack on the same sample


def points(cells: dict, attack: str) -> list[Point]:
    """One point per finished cell attacked with ``attack`` (``cells[method][seed]["attacks"][attack]``
    holds the report's summary first, as :func:`jaxrobust.study.collect` gives it)."""
    out = []
    for method, seeds in cells.items():
        for seed, cell in seeds.items():
            if attack in cell["attacks"]:
                summary = cell["attacks"][attack][0]
                out.append(Point(method, seed, summary["clean_accuracy"], summary["accuracy_under_attack"]))
    return out


def on_frontier(pts: list[Point]) -> list[Point]:
    """The points no other point dominates, by clean accuracy descending."""
    def dominated(p: Point) -> bool:
        return any(q.clean >= p.clean and q.attacked >= p.attacked and (q.clean, q.attacked) != (p.clean, p.attacked) for q in pts)

    return sorted((p for p in pts if not dominated(p)), key=lambda p: (-p.clean, p.attacked))


def frontier_table(cells: dict, attacks: list[str]) -> dict:
    """``{attack: {"points": [...], "frontier": [...]}}``, points as dicts (for the table's JSON)."""
    out = {}
    for attack in attacks:
        pts = points(cells, attack)
        out[attack] = {"points": [dataclasses.asdict(p) for p in pts],
                       "frontier": [dataclasses.asdict(p) for p in on_frontier(pts)]}
    return out


def summary_lines(frontier: dict, focus: str = "rift") -> list[str]:
    """Per attack, a sentence naming the methods with a model on the frontier (how many of their seeds)
    and where ``focus`` stands: its seeds on the frontier, or how far its best model is from it (the
    gap under attack to the frontier model with at least its clean accuracy)."""
    lines = []
    for attack, entry in frontier.items():
        pts = [Point(**p) for p in entry["points"]]
        front = [Point(**p) for p in entry["frontier"]]
        if not pts:
            continue
        counts = {}
        for p in front:
            counts[p.method] = counts.get(p.method, 0) + 1
        seeds = {m: len({p.seed for p in pts if p.method == m}) for m in counts}
        held = ", ".join(f"{m} ({n} of {seeds[m]} seeds)" for m, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        line = f"Under {attack}, the frontier holds {held}."
        name = "RIFT" if focus == "rift" else focus
        mine = [p for p in pts if p.method == focus]
        if mine and focus not in counts:
            best = max(mine, key=lambda p: (p.attacked, p.clean))
            above = [q for q in front if q.clean >= best.clean]
            gap = 100 * (max(q.attacked for q in above) - best.attacked)
            line += (f" {name} is not on it: its most robust model (seed {best.seed}, "
                     f"clean {100 * best.clean:.1f}, attacked {100 * best.attacked:.1f}) is {gap:.1f} points under attack "
                     f"below a frontier model at least as accurate clean.")
        elif mine:
            line += f" {name} has {counts[focus]} of its {len({p.seed for p in mine})} seeds on it."
        lines.append(line)
    return lines


def plot(frontier: dict, path: Path, title: str = "") -> None:
    """One panel per attack: every model as a dot coloured by method, the frontier as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = list(frontier)
    methods = list(dict.fromkeys(p["method"] for e in frontier.values() for p in e["points"]))
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, max(len(attacks), 1), figsize=(3.4 * max(len(attacks), 1), 3.4), squeeze=False)
    for ax, attack in zip(axes[0], attacks):
        for method in methods:
            mine = [p for p in frontier[attack]["points"] if p["method"] == method]
            ax.scatter([100 * p["clean"] for p in mine], [100 * p["attacked"] for p in mine], color=colours[method], s=22, label=method)
        front = frontier[attack]["frontier"]
        if front:
            xs = np.array([100 * p["clean"] for p in front])
            ys = np.array([100 * p["attacked"] for p in front])
            ax.step(xs, ys, where="post", color="black", linewidth=0.8, zorder=0)
            ax.scatter(xs, ys, facecolors="none", edgecolors="black", s=60, linewidths=0.8)
        ax.set_title(attack, fontsize=9)
        ax.set_xlabel("clean accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy under attack (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(methods), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
