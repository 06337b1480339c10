"""The task registry: what a task's texts and labels are, and where its splits come from.

A task is looked up by name (``rotten_tomatoes``, ``sst2``, ...) or given as a user's file
(``csv:PATH`` / ``jsonl:PATH`` with ``text_field``/``label_field``). Every task yields the same three
splits, ``train``/``dev``/``test``; where the source has no dev (or no labelled test) split, one is cut
from the training data with a fixed-seed stratified split, so the split never changes between runs.

Empty or whitespace-only texts are skipped and counted (``Splits.skipped``); a label outside the
task's declared label set is an error.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from jaxrobust.errors import JaxRobustError

SPLITS = ("train", "dev", "test")
SPLIT_SEED = 0  # fixed: a task's split never depends on the training seed


@dataclasses.dataclass(frozen=True)
class Example:
    text: str
    label: int
    text_b: str | None = None  # second segment of a pair task (NLI hypothesis)


@dataclasses.dataclass
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    skipped: int = 0  # empty or whitespace-only texts dropped while loading

    def __getitem__(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise JaxRobustError(f"unknown split {name!r}; splits: {', '.join(SPLITS)}")
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    label_names: tuple[str, ...]
    load: Callable[[], Splits]
    source: str  # where it comes from, for `data describe` and error messages
    description: str = ""
    pair: bool = False

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


def make_examples(
    rows: Iterable[tuple], label_names: Sequence[str], source: str
) -> tuple[list[Example], int]:
    """``(text, label)`` or ``(text, text_b, label)`` rows -> examples and the count of skipped rows.

    Labels may be given as ints (indices) or as label names.
    """
    index = {name: i for i, name in enumerate(label_names)}
    out, skipped = [], 0
    for row in rows:
        *texts, label = row
        if any(t is None or not str(t).strip() for t in texts):
            skipped += 1
            continue
        if isinstance(label, str) and label in index:
            label = index[label]
        elif isinstance(label, str) and label.strip().lstrip("-").isdigit():
            label = int(label)
        if not isinstance(label, (int, np.integer)) or isinstance(label, bool) or not 0 <= label < len(label_names):
            raise JaxRobustError(
                f"label {label!r} in {source} is outside the declared labels {list(label_names)}"
            )
        out.append(Example(str(texts[0]), int(label), str(texts[1]) if len(texts) > 1 else None))
    return out, skipped


def stratified_split(
    examples: Sequence[Example], fractions: Sequence[float], seed: int = SPLIT_SEED
) -> list[list[Example]]:
    """Split per class in the given proportions (last part takes the remainder), keeping file order
    within each part so that a split is reproducible from the data and the seed alone."""
    rng = np.random.default_rng(seed)
    labels = np.array([e.label for e in examples])
    parts: list[list[int]] = [[] for _ in fractions]
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[rng.permutation(len(idx))]
        bounds = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, bounds)):
            part.extend(chunk.tolist())
    return [[examples[i] for i in sorted(part)] for part in parts]


def split_80_10_10(examples: Sequence[Example], skipped: int) -> Splits:
    train, dev, test = stratified_split(examples, (0.8, 0.1, 0.1))
    return Splits(train, dev, test, skipped)


# --- registry ---------------------------------------------------------------------------------

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    TASKS[task.name] = task
    return task


def get_task(name: str, text_field: str = "text", label_field: str = "label", text_b_field: str | None = None) -> Task:
    """A registered task, or a user's ``csv:PATH`` / ``jsonl:PATH`` file."""
    import jaxrobust.data.sources  # noqa: F401  (registers the built-in tasks)

    if name.startswith(("csv:", "jsonl:")):
        return file_task(name, text_field, label_field, text_b_field)
    if name not in TASKS:
        raise JaxRobustError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}, or csv:PATH / jsonl:PATH"
        )
    return TASKS[name]


def _read_rows(kind: str, path: Path) -> list[dict]:
    if kind == "csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise JaxRobustError(f"{path}:{n} is not valid JSON: {e.msg}") from e
    return rows


def file_task(ref: str, text_field: str, label_field: str, text_b_field: str | None) -> Task:
    """A task over a user's CSV or JSON-lines file: labels are the sorted distinct label values,
    split 80/10/10 stratified."""
    kind, _, path_str = ref.partition(":")
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise JaxRobustError(f"no such file: {path}")
    rows = _read_rows(kind, path)
    if not rows:
        raise JaxRobustError(f"{path} holds no rows")
    fields = [text_field, label_field] + ([text_b_field] if text_b_field else [])
    missing = [f for f in fields if f not in rows[0]]
    if missing:
        raise JaxRobustError(f"{path} has no column {', '.join(map(repr, missing))}; columns: {', '.join(rows[0])}")
    label_names = tuple(sorted({str(r[label_field]) for r in rows}))
    tuples = [(r[text_field], *([r[text_b_field]] if text_b_field else []), str(r[label_field])) for r in rows]

    def load() -> Splits:
        return split_80_10_10(*make_examples(tuples, label_names, str(path)))

    return Task(ref, label_names, load, source=str(path), pair=bool(text_b_field))
