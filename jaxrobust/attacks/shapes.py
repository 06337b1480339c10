"""Device batch shapes: a few compiled programs serve every attack, whatever its texts.

Compiling is most of a first attack's time on a CPU (about 0.7 s for one MiniLM forward program,
1.2 s with the backward pass), so every model evaluation of an attack -- the victim's queries, its
gradient pass, the string-level check, the sentence encoder -- runs on batches of a few fixed shapes:

* **lengths** from :func:`length_ladder`: 16, 24, 32, 40, 48, 64, 96, 128, 192, ... up to the
  model's maximum length (rounded up to 8), each at most 1.5 times the one below it, so a text is
  padded by at most half its length (up to 16 tokens for the shortest). Steps of 8 where most
  texts fall: a sentence (a review, TextFooler's 15-word windows) is 15 to 40 tokens long, and
  its padding is model time (a step of 16 there cost a fifth of the sentence encoder's time);
* the **gradient pass** on a coarser ladder (:data:`COARSE`: 32, 64, 128, ..., each twice the one
  below): it runs once per example, on its clean text, so its padding costs little, while its
  program (forward and backward) compiles about twice as long as the forward pass;
* **rows**: one batch size per command (``--batch-size``; a partial batch is filled with copies
  of its first row, or with rows waiting in a :class:`FreeRows` queue: the string-level check's).
  On a CPU a MiniLM evaluates as many rows per second in batches of 8 as of 64, so a second,
  smaller size would only double the programs.

The model programs take only token arrays ``[rows, length]``; what an attack's layout decides
(slots, candidates, windows) is assembled into tokens by separate, cheap programs that build every
batch at the layout's longest bucket (:func:`fit`), so they compile once per layout. The
expensive programs depend on nothing but (rows, length): shared by every attack, by the
string-level check, and by the next command through the persistent compilation cache.

A batch holds texts of one length bucket only: a text is always evaluated at the same padded
length, whatever else is asked with it.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from jaxrobust import interrupt

LADDER = (16, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
COARSE = (32, 64, 128, 256, 512, 1024, 2048, 4096)  # the gradient pass's lengths (a subset of LADDER)
STEP = 8  # the longest bucket is the model's maximum length rounded up to this
ROWS = 8  # rows per device batch unless a command says otherwise (--batch-size)


def round_up(n, step: int):
    """``n`` (a number or array) rounded up to a multiple of ``step``."""
    return -(-n // step) * step


def length_ladder(max_length: int, coarse: bool = False) -> tuple[int, ...]:
    """The padded lengths a model of ``max_length`` tokens is evaluated at (``coarse``: by the
    gradient pass)."""
    top = round_up(max_length, STEP)
    return tuple(b for b in (COARSE if coarse else LADDER) if b < top) + (top,)


def bucket(lengths, max_length: int, coarse: bool = False) -> np.ndarray:
    """``[R]`` padded length of texts of ``lengths [R]`` tokens (each at most ``max_length``)."""
    ladder = np.asarray(length_ladder(max_length, coarse))
    return ladder[np.minimum(np.searchsorted(ladder, np.asarray(lengths)), len(ladder) - 1)]


def length_batches(lengths: Sequence[int], chunk: int, max_length: int, coarse: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Device batches of requests whose token lengths are ``lengths [R]``: ``(rows, padded, length)``
    per batch, ``rows`` the requests it answers, ``padded`` those rows repeated up to ``chunk`` rows,
    ``length`` their bucket (:func:`bucket`)."""
    buckets = bucket(lengths, max_length, coarse)
    order = np.argsort(buckets, kind="stable")
    bounds = np.flatnonzero(np.diff(buckets[order])) + 1
    for same in np.split(order, bounds):
        for start in range(0, len(same), chunk):
            rows = same[start : start + chunk]
            interrupt.check()  # Ctrl-C stops between device batches
            yield rows, np.concatenate([rows, np.repeat(rows[:1], chunk - len(rows))]), int(buckets[rows[0]])


def pad_tokens(ids: Sequence[Sequence[int]], length: int, pad_id: int, types: Sequence[Sequence[int]] | None = None) -> dict:
    """Token lists -> ``input_ids, attention_mask, token_type_ids`` ``[len(ids), length]``."""
    out = dict(input_ids=np.full((len(ids), length), pad_id, np.int32), attention_mask=np.zeros((len(ids), length), np.int32),
               token_type_ids=np.zeros((len(ids), length), np.int32))
    for r, row in enumerate(ids):
        out["input_ids"][r, : len(row)] = row
        out["attention_mask"][r, : len(row)] = 1
        if types is not None:
            out["token_type_ids"][r, : len(row)] = types[r]
    return out


class FreeRows:
    """Token rows waiting for a model pass, by padded length: each fills a free row of a partial
    device batch of its length (a row that would otherwise repeat the batch's first row), so it is
    evaluated by a program that runs anyway."""

    def __init__(self, max_length: int, pad_id: int):
        self.max_length, self.pad_id = max_length, pad_id
        self._waiting: dict[int, list[tuple[object, Sequence[int], Sequence[int] | None]]] = {}

    def add(self, keys: Sequence, ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None = None) -> None:
        """Queue rows ``ids`` (``types``: their token types), each answered later under its key."""
        for i, (key, length) in enumerate(zip(keys, bucket([len(x) for x in ids], self.max_length).tolist())):
            self._waiting.setdefault(length, []).append((key, ids[i], None if types is None else types[i]))

    def fill(self, tokens: dict, used: int) -> tuple[dict, list]:
        """``tokens`` (a device batch ``[rows, length]`` whose first ``used`` rows are asked for) with
        waiting rows of its length in its free rows, and their keys, in row order after ``used``."""
        rows, length = tokens["input_ids"].shape
        waiting = self._waiting.get(length)
        if not waiting or used >= rows:
            return tokens, []
        taken, self._waiting[length] = waiting[: rows - used], waiting[rows - used :]
        types = None if any(t is None for _, _, t in taken) else [t for _, _, t in taken]
        extra = pad_tokens([ids for _, ids, _ in taken], length, self.pad_id, types)
        tokens = dict(tokens)
        for name, values in extra.items():
            tokens[name] = np.array(tokens[name])  # a host copy: built arrays are read-only views
            tokens[name][used : used + len(taken)] = values
        return tokens, [key for key, _, _ in taken]


def fit(tokens: dict, length: int) -> dict:
    """Token arrays ``[B, >= length]`` cut, on the host, to their first ``length`` positions (the
    rest is padding)."""
    return {k: np.asarray(v)[:, :length] for k, v in tokens.items()}
