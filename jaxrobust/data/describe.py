"""A short plain-text report of a task: where it comes from, its splits and their label balance.

Meant for a person deciding how to train on a task (class imbalance, how long the texts are, so
what ``max_length`` truncates), not for machines: the layout may change.
"""

from __future__ import annotations

import numpy as np

from jaxrobust.data.tasks import SPLITS, Example, Splits, Task

PERCENTILES = (50, 90, 99)


def _balance_table(task: Task, splits: Splits) -> list[str]:
    """One row per label, one column per split: ``count (share%)``; a final row of split sizes.

    Labels are rows rather than columns so that a task with many classes stays readable.
    """
    counts = {s: np.bincount([e.label for e in splits[s]], minlength=task.num_labels) for s in SPLITS}
    cells = [["label", *SPLITS]]
    for i, name in enumerate(task.label_names):
        row = [name]
        for s in SPLITS:
            total = len(splits[s])
            share = 100.0 * counts[s][i] / total if total else 0.0
            row.append(f"{counts[s][i]} ({share:.1f}%)")
        cells.append(row)
    cells.append(["total", *(str(len(splits[s])) for s in SPLITS)])
    widths = [max(len(r[c]) for r in cells) for c in range(len(cells[0]))]
    # Label column left-aligned, numbers right-aligned so that digits line up.
    return ["  ".join([r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]) for r in cells]


def _words(example: Example) -> int:
    """Whitespace words of an example; both segments of a pair, as a model reads them together."""
    return len(example.text.split()) + (len(example.text_b.split()) if example.text_b else 0)


def _length_line(examples: list[Example]) -> str:
    if not examples:
        return "train length (words): no examples"
    lengths = np.array([_words(e) for e in examples])
    stats = [f"p{p} {np.percentile(lengths, p):.0f}" for p in PERCENTILES]
    return f"train length (words): {', '.join(stats)}, max {lengths.max()}"


def describe_task(task: Task, splits: Splits | None = None) -> str:
    """The report for ``task``; ``splits`` saves loading the task again when the caller has them."""
    splits = task.load() if splits is None else splits
    lines = [f"task: {task.name}" + (" (pair)" if task.pair else ""), f"source: {task.source}"]
    if task.description:
        lines.append(f"description: {task.description}")
    lines.append(f"labels ({task.num_labels}): {', '.join(task.label_names)}")
    lines.append("")
    lines.extend(_balance_table(task, splits))
    lines.append("")
    lines.append(f"skipped (empty or whitespace-only text): {splits.skipped}")
    lines.append(f"duplicates dropped before splitting (each text in one split only): {splits.duplicates}")
    lines.append(f"split digest (the key of runs and study cells): {splits.digest()}")
    lines.append(_length_line(splits.train))
    return "\n".join(lines)
