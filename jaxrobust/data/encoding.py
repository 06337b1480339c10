"""Tokenisation with word alignment, and length-bucketed, padded, masked batches.

Attacks substitute *words*, the model reads *tokens*: every encoded example keeps its words as
character spans of the original text and, for each token, the index of the word it came from. The
text itself is tokenised untouched (not re-joined from words), so the model sees exactly what a
user's string gives.

Batches come in a few fixed lengths (buckets) so a jitted step compiles once per bucket; the last
partial batch of a bucket is filled with padding examples of weight 0, so no example is dropped.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

from jaxrobust.data.tasks import Example

# A word: letters/digits with inner apostrophes ("don't", "l’amour"); any other non-space character
# stands alone (punctuation is never substituted, but keeps its place).
WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every word of ``text``."""
    return [m.span() for m in WORD_RE.finditer(text)]


@dataclasses.dataclass
class Encoded:
    input_ids: np.ndarray  # [n] int32, special tokens included, n <= max_length
    token_type_ids: np.ndarray  # [n] int32
    token_words: np.ndarray  # [n] int32: word index of each token, -1 for special/other-segment tokens
    words: list[tuple[int, int]]  # character spans in the attacked text (text, or text_b of a pair)
    label: int

    @property
    def length(self) -> int:
        return len(self.input_ids)


def encode(tokenizer, examples: Sequence[Example], max_length: int) -> list[Encoded]:
    """Tokenise ``examples`` (truncated to ``max_length`` tokens) and align tokens to words.

    For pair tasks the second segment (the hypothesis) is the one aligned: it is what attacks perturb.
    """
    if not examples:
        return []
    pair = examples[0].text_b is not None
    texts = [e.text for e in examples]
    seconds = [e.text_b for e in examples] if pair else None
    out = tokenizer(
        texts,
        seconds,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    segment = 1 if pair else 0
    encoded = []
    for i, ex in enumerate(examples):
        attacked = ex.text_b if pair else ex.text
        spans = word_spans(attacked)
        starts = np.array([s for s, _ in spans], dtype=np.int64)
        seq_ids = out.sequence_ids(i)
        token_words = np.full(len(out["input_ids"][i]), -1, np.int32)
        for t, ((s, e), seq) in enumerate(zip(out["offset_mapping"][i], seq_ids)):
            if seq != segment or e <= s or not len(starts):
                continue
            # Byte-level BPE and SentencePiece may count the space before a word into its first
            # token ("Ġfilms" spans " films"), or give that space a token of its own: either belongs
            # to the word after the space.
            while s < e and attacked[s].isspace():
                s += 1
            if s < e:
                token_words[t] = np.searchsorted(starts, s, side="right") - 1
            else:  # a space of its own: the word that starts right after it, if one does
                w = np.searchsorted(starts, e, side="left")
                token_words[t] = w if w < len(starts) and starts[w] == e else -1
        encoded.append(
            Encoded(
                np.asarray(out["input_ids"][i], np.int32),
                np.asarray(out["token_type_ids"][i], np.int32),
                token_words,
                spans,
                ex.label,
            )
        )
    return encoded


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket length that holds ``length`` tokens."""
    for b in sorted(buckets):
        if length <= b:
            return b
    raise ValueError(f"sequence of {length} tokens exceeds the largest bucket {max(buckets)}")


def make_batches(
    encoded: Sequence[Encoded],
    batch_size: int,
    buckets: Sequence[int],
    pad_id: int,
    shuffle_seed: int | None = None,
) -> list[dict[str, np.ndarray]]:
    """All batches of ``encoded``, each ``{input_ids, attention_mask, token_type_ids: [B, Lb],
    labels, weights, index: [B]}`` with ``Lb`` a bucket length.

    ``weights`` is 1 for real examples and 0 for the padding examples that fill a bucket's last
    batch; ``index`` is the position in ``encoded`` (-1 for padding). With ``shuffle_seed`` the
    examples within each bucket and the order of all batches are shuffled by that seed; without,
    batches come in bucket order and example order (for evaluation).
    """
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    by_bucket: dict[int, list[int]] = {}
    for i, e in enumerate(encoded):
        by_bucket.setdefault(bucket_for(e.length, buckets), []).append(i)
    batches = []
    for length in sorted(by_bucket):
        idx = np.array(by_bucket[length])
        if rng is not None:
            idx = idx[rng.permutation(len(idx))]
        for start in range(0, len(idx), batch_size):
            part = idx[start : start + batch_size]
            batches.append(_collate([encoded[i] for i in part], part, batch_size, length, pad_id))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _collate(items: Sequence[Encoded], index: np.ndarray, batch_size: int, length: int, pad_id: int) -> dict:
    ids = np.full((batch_size, length), pad_id, np.int32)
    types = np.zeros((batch_size, length), np.int32)
    mask = np.zeros((batch_size, length), np.int32)
    labels = np.zeros(batch_size, np.int32)
    weights = np.zeros(batch_size, np.float32)
    full_index = np.full(batch_size, -1, np.int32)
    for row, e in enumerate(items):
        ids[row, : e.length] = e.input_ids
        types[row, : e.length] = e.token_type_ids
        mask[row, : e.length] = 1
        labels[row] = e.label
        weights[row] = 1.0
    full_index[: len(items)] = index
    # Padding rows attend to one token so that their (ignored) softmax stays finite.
    mask[len(items) :, 0] = 1
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels, weights=weights, index=full_index)

