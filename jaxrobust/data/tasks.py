"""The task registry: what a task's texts and labels are, and where its splits come from.

A task is looked up by name (``rotten_tomatoes``, ``sst2``, ...) or given as a user's file
(``csv:PATH`` / ``jsonl:PATH`` with ``text_field``/``label_field``). Every task yields the same three
splits, ``train``/``dev``/``test``; where the source has no dev (or no labelled test) split, one is cut
from the training data with a fixed-seed stratified split, so the split never changes between runs.
A file task may bring its own dev and test files (``dev=``/``test=``); the main file is then cut only
into the splits still missing (both given: all of it is train; one given: 90/10 stratified).

Empty or whitespace-only texts are skipped and counted (``Splits.skipped``); a label outside the
task's declared label set is an error.

How a file's labels are mapped to classes: without declared ``label_names``, the classes are the
distinct label values of all the task's files, stripped of surrounding spaces; when every one is an
integer they are in numeric order (``2`` before ``10``), otherwise the names are sorted as strings.
With declared ``label_names`` (in class order), a row's label must be one of those names or an
integer index ``0..C-1`` into them. A malformed row (not UTF-8, not a JSON object, no label, no text
field, an undeclared label) is an error naming ``FILE:LINE``.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import io
import json
import re
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
    duplicates: int = 0  # repeated texts dropped before splitting, so that no text is in two splits

    def __getitem__(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise JaxRobustError(f"unknown split {name!r}; splits: {', '.join(SPLITS)}")
        return getattr(self, name)

    def digest(self) -> str:
        """The identity of the split: a hash of every split's examples in order. Runs and study cells
        are keyed by it, so a changed split (new data, a new rule) never reuses a stale result."""
        h = hashlib.sha256()
        for name in SPLITS:
            h.update(json.dumps([name, [[e.text, e.text_b, e.label] for e in self[name]]]).encode())
        return h.hexdigest()[:16]


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


def _text_key(e: Example) -> tuple[str, str | None]:
    return " ".join(e.text.split()), " ".join(e.text_b.split()) if e.text_b is not None else None


def deduplicate(parts: dict[str, Sequence[Example]]) -> tuple[dict[str, list[Example]], int]:
    """Each distinct text (pair; whitespace aside) kept once, in the first of test, dev, train that
    holds it, at its first place there: ``(parts, number dropped)``. A split cut from deduplicated
    examples cannot put a training sentence into dev or test."""
    seen, out = set(), {}
    for name in sorted(parts, key=lambda n: ("test", "dev", "train").index(n)):
        out[name] = []
        for e in parts[name]:
            if _text_key(e) not in seen:
                seen.add(_text_key(e))
                out[name].append(e)
    return out, sum(map(len, parts.values())) - sum(map(len, out.values()))


def split_80_10_10(examples: Sequence[Example], skipped: int) -> Splits:
    unique, duplicates = deduplicate({"train": examples})
    train, dev, test = stratified_split(unique["train"], (0.8, 0.1, 0.1))
    return Splits(train, dev, test, skipped, duplicates)


# --- registry ---------------------------------------------------------------------------------

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    TASKS[task.name] = task
    return task



def get_task(
    name: str,
    text_field: str = "text",
    label_field: str = "label",
    text_b_field: str | None = None,
    *,
    label_names: Sequence[str] | str | None = None,
    dev: str | None = None,
    test: str | None = None,
) -> Task:
    """A registered task, or a user's ``csv:PATH`` / ``jsonl:PATH`` file (see :func:`file_task`)."""
    import jaxrobust.data.sources  # noqa: F401  (registers the built-in tasks)

    if name.startswith(tuple(f"{kind}:" for kind in FILE_KINDS)):
        return file_task(name, text_field, label_field, text_b_field, label_names=label_names, dev=dev, test=test)
    if name not in TASKS:
        raise JaxRobustError(
            f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}, or csv:PATH / jsonl:PATH"
        )
    if label_names or dev or test:  # a registered task has fixed labels and splits: never ignore them silently
        raise JaxRobustError(f"label names and dev/test files apply to csv:PATH / jsonl:PATH tasks only, not {name!r}")
    return TASKS[name]


# --- user files -------------------------------------------------------------------------------

FILE_KINDS = ("csv", "jsonl")
_INTEGER = re.compile(r"-?[0-9]+")
# Smallest class size from which every part of the split gets a row, under stratified_split's rounding.
_MIN_PER_CLASS = {(0.8, 0.1, 0.1): 8, (0.9, 0.1): 5}
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean", type(None): "null"}


def _decode(path: Path) -> str:
    """The file's text; a file that is not UTF-8 is named with the line, column and byte at fault."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        raise JaxRobustError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at column {e.start - line_start + 1}); "
            "save the file as UTF-8"
        ) from e
    return text.removeprefix("\ufeff")  # spreadsheet programs start UTF-8 CSVs with a byte-order mark


def _csv_records(path: Path, text: str, fields: Sequence[str]) -> Iterable[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    missing = [f for f in fields if f not in header]
    if missing:
        raise JaxRobustError(f"{path} has no column {', '.join(map(repr, missing))}; columns: {', '.join(header)}")
    end = reader.line_num
    for cells in reader:
        # A quoted cell may span lines: name the line the row starts on.
        line, end = end + 1, reader.line_num
        if not cells:  # a blank line
            continue
        if any(c.strip() for c in cells[len(header):]):
            raise JaxRobustError(
                f"{path}:{line}: {len(cells)} cells but the header has {len(header)}; quote texts that contain commas"
            )
        for f in fields:
            if header.index(f) >= len(cells):  # a short row: its label would silently be None
                raise JaxRobustError(f"{path}:{line}: no {f!r} cell (the row has {len(cells)} of {len(header)} cells)")
        yield line, dict(zip(header, cells))


def _jsonl_records(path: Path, text: str, fields: Sequence[str]) -> Iterable[tuple[int, dict]]:
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise JaxRobustError(f"{path}:{line}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            got = _JSON_TYPES.get(type(row), type(row).__name__)
            raise JaxRobustError(f"{path}:{line}: expected a JSON object per line, got {got}")
        missing = [f for f in fields if f not in row]
        if missing:
            raise JaxRobustError(f"{path}:{line}: no field {', '.join(map(repr, missing))}; fields: {', '.join(row)}")
        yield line, row


def _read_file(kind: str, path: Path, fields: Sequence[str]) -> list[tuple[str, tuple, str]]:
    """``(where, texts, label)`` per row of a user's file: ``where`` is ``FILE:LINE`` for messages,
    ``texts`` the text (and text_b) values as found, ``label`` the label as a stripped string."""
    records = (_csv_records if kind == "csv" else _jsonl_records)(path, _decode(path), fields)
    *text_fields, label_field = fields
    rows = []
    for line, record in records:
        where, label = f"{path}:{line}", record[label_field]
        if isinstance(label, (dict, list)):
            raise JaxRobustError(f"{where}: label {label!r} is neither a name nor an integer")
        label = "" if label is None else str(label).strip()
        if not label:
            raise JaxRobustError(f"{where}: empty label in {label_field!r}")
        rows.append((where, tuple(record[f] for f in text_fields), label))
    if not rows:
        raise JaxRobustError(f"{path} holds no rows")
    return rows


def _label_index(
    rows: Iterable[tuple[str, tuple, str]], declared: tuple[str, ...] | None
) -> tuple[tuple[str, ...], Callable[[str, str], int]]:
    """The class names and ``(where, label) -> class index``, by the rules in the module docstring."""
    if declared is not None:
        index = {name: i for i, name in enumerate(declared)}

        def declared_index(where: str, label: str) -> int:
            if label in index:
                return index[label]
            if _INTEGER.fullmatch(label) and 0 <= int(label) < len(declared):
                return int(label)
            raise JaxRobustError(
                f"{where}: label {label!r} is not one of the declared labels {', '.join(declared)} "
                f"(or an index 0..{len(declared) - 1})"
            )

        return declared, declared_index
    labels = {label for _, _, label in rows}
    if all(_INTEGER.fullmatch(label) for label in labels):
        # Integer labels: numeric order, so that "2" is before "10" and "01" is the same class as "1".
        names = tuple(str(n) for n in sorted({int(label) for label in labels}))
        index = {name: i for i, name in enumerate(names)}
        return names, lambda where, label: index[str(int(label))]
    names = tuple(sorted(labels))
    index = {name: i for i, name in enumerate(names)}
    return names, lambda where, label: index[label]


def _declared_names(label_names: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if not label_names:
        return None
    # A comma-separated string is accepted for a command-line or config value.
    names = tuple(n.strip() for n in (label_names.split(",") if isinstance(label_names, str) else map(str, label_names)))
    if len(names) < 2 or not all(names) or len(set(names)) < len(names):
        raise JaxRobustError(f"label names must be at least two distinct non-empty names, got {list(names)}")
    return names


def _cut(
    examples: list[Example], fractions: tuple[float, ...], parts: tuple[str, ...], path: Path, names: Sequence[str]
) -> list[list[Example]]:
    """``stratified_split`` of a file's examples, refusing a split that would come out empty."""
    pieces = stratified_split(examples, fractions)
    empty = [part for part, piece in zip(parts, pieces) if not piece]
    if empty:
        counts = collections.Counter(names[e.label] for e in examples)
        per_class = ", ".join(f"{name!r} {counts[name]}" for name in names if counts[name])
        raise JaxRobustError(
            f"{path} has too few rows per class for the {'/'.join(str(round(100 * f)) for f in fractions)} split: "
            f"{len(examples)} rows ({per_class}) leave the {' and '.join(empty)} split empty; "
            f"give each class at least {_MIN_PER_CLASS[fractions]} rows, or give dev and test files"
        )
    return pieces


def _resolve(path: str | Path, role: str) -> Path:
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise JaxRobustError(f"no such file: {resolved}" + (f" (the {role} file)" if role != "train" else ""))
    return resolved


def file_task(
    ref: str,
    text_field: str = "text",
    label_field: str = "label",
    text_b_field: str | None = None,
    *,
    label_names: Sequence[str] | str | None = None,
    dev: str | Path | None = None,
    test: str | Path | None = None,
) -> Task:
    """A task over a user's CSV or JSON-lines file ``ref`` (``csv:PATH`` / ``jsonl:PATH``).

    Split 80/10/10 stratified, or, with ``dev``/``test`` files of the same format and fields, only into
    the splits those do not provide. Labels are mapped as the module docstring says. The file is read
    and checked here, so that a bad row fails before any model is loaded.
    """
    kind, _, path_str = ref.partition(":")
    if kind not in FILE_KINDS or not path_str:
        raise JaxRobustError(f"{ref!r} is not a file task; give csv:PATH or jsonl:PATH")
    # Resolved: a run directory stores the task name, which must find the file from any folder.
    files = {"train": _resolve(path_str, "train")}
    files.update({role: _resolve(p, role) for role, p in (("dev", dev), ("test", test)) if p})
    path = files["train"]
    fields = (text_field, *([text_b_field] if text_b_field else []), label_field)
    raw = {role: _read_file(kind, p, fields) for role, p in files.items()}
    names, index = _label_index((row for rows in raw.values() for row in rows), _declared_names(label_names))
    examples, skipped = {}, 0
    for role, rows in raw.items():
        examples[role], n = make_examples(
            ((*texts, index(where, label)) for where, texts, label in rows), names, str(files[role])
        )
        skipped += n
        if not examples[role]:
            raise JaxRobustError(f"{files[role]} has no row with a non-empty text ({n} skipped)")
    examples, duplicates = deduplicate(examples)
    classes = {e.label for e in examples["train"]}
    if len(classes) < 2:
        raise JaxRobustError(f"{path} has a single class {names[classes.pop()]!r}; a classifier needs at least two")

    cut = tuple(s for s in ("dev", "test") if s not in files)  # the splits the main file must also give
    if len(cut) == 2:
        examples["train"], examples["dev"], examples["test"] = _cut(examples["train"], (0.8, 0.1, 0.1), SPLITS, path, names)
    elif len(cut) == 1:
        examples["train"], examples[cut[0]] = _cut(examples["train"], (0.9, 0.1), ("train", cut[0]), path, names)

    def load() -> Splits:  # fresh lists: a caller may change what it gets
        return Splits(*(list(examples[s]) for s in SPLITS), skipped=skipped, duplicates=duplicates)

    source = str(path) + "".join(f"; {role}: {files[role]}" for role in ("dev", "test") if role in files)
    return Task(f"{kind}:{path}", names, load, source=source, pair=bool(text_b_field))
