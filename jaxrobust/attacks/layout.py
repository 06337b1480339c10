"""Examples laid out for word substitution on device.

A word-substitution attack changes *words*; the model reads *tokens*, and a substituted word may have
a different number of sub-word tokens than the original. So every example is cut into **segments**:
each attackable word (a *slot*) is one segment holding its 1..P tokens, every other token is a
segment of its own. A *choice* per slot says what the slot holds now, and :func:`build_tokens`
re-assembles the token sequence from the segments on device (cumulative offsets + one scatter), so
any mix of substitutions is a static-shape, jit- and vmap-friendly function.

Choice values of a slot: ``-1`` the original word, ``0..K-1`` a candidate, :data:`DELETE` the word
removed (deletion importance), :data:`UNK` the word replaced by the tokenizer's unknown token
(PWWS saliency).

The multi-token rule: a word is attackable only if it is at most ``P`` tokens long (``P`` =
``max_pieces``, 4 by default), and a candidate is kept only if it is at most ``P`` tokens long in
the word's context (a leading space where the original had one, for byte-level BPE). Lengths may
differ: the sequence grows or shrinks, and the padded length leaves room for every allowed change.
Because WordPiece and BPE never merge tokens across whitespace, the re-assembled tokens equal the
tokenisation of the perturbed string; attacks nevertheless re-tokenise every final string
(:mod:`jaxrobust.attacks.verify`), which is what counts.

Shapes: N examples, S segments, P pieces per segment, W slots, K candidates per slot, L tokens.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.attacks import pos
from jaxrobust.data.conventions import conventions
from jaxrobust.data.encoding import Encoded, encode
from jaxrobust.data.tasks import Example

ORIGINAL, DELETE, UNK = -1, -2, -3
MAX_PIECES = 4
_BUDGET_EPS = 1e-6  # ceil(0.1 * 30) must be 3, not 4, in float32 as in float64


@dataclasses.dataclass
class AttackExample:
    """Host-side view of one example: what the attack may change and how to write the result."""

    index: int  # position in the attacked sample
    example: Example
    encoded: Encoded
    slot_words: list[int]  # word index (into encoded.words) of each slot
    candidates: list[list[str]]  # candidate words of each slot, best first (case of the original)
    candidate_ids: list[list[list[int]]]  # tokens of each candidate in the word's context
    n_words: int  # alphanumeric words of the attacked text (the budget's base)

    @property
    def text(self) -> str:
        """The attacked text (the hypothesis of a pair)."""
        return self.example.text_b if self.example.text_b is not None else self.example.text

    def max_changes(self, budget: float) -> int:
        """Words that may change under ``budget`` (share of words): ``max(1, ceil(budget * n))``."""
        return max(1, math.ceil(budget * self.n_words - _BUDGET_EPS))

    def substitutions(self, choice: np.ndarray) -> list[tuple[int, str, str]]:
        """``[word_index, old_word, new_word]`` of every substituted slot in ``choice`` [W]."""
        subs = []
        for slot, c in enumerate(np.asarray(choice)[: len(self.slot_words)]):
            if c >= 0:
                w = self.slot_words[slot]
                old = self.word(w)
                subs.append((w, old, match_case(self.candidates[slot][c], old)))
        return subs

    def word(self, w: int) -> str:
        start, end = self.encoded.words[w]
        return self.text[start:end]

    def perturbed_text(self, choice: np.ndarray) -> str:
        """The attacked text with the substitutions of ``choice`` written into it."""
        text = self.text
        for w, _, new in sorted(self.substitutions(choice), reverse=True):
            start, end = self.encoded.words[w]
            text = text[:start] + new + text[end:]
        return text

    def perturbed_example(self, choice: np.ndarray) -> Example:
        text = self.perturbed_text(choice)
        if self.example.text_b is not None:
            return dataclasses.replace(self.example, text_b=text)
        return dataclasses.replace(self.example, text=text)


def match_case(word: str, like: str) -> str:
    """``word`` with the capitalisation pattern of ``like`` (UPPER, Title or as is)."""
    if len(like) > 1 and like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


@dataclasses.dataclass
class Layout:
    """Padded device arrays for N examples of one length bucket (a pytree of arrays).

    ``seg_tokens [N,S,P]``, ``seg_len [N,S]``, ``seg_type [N,S]``, ``seg_slot [N,S]`` (slot of a
    segment, -1 for fixed tokens), ``last_seg [N]`` (the final special token, kept when the sequence
    is truncated; -1 for a tokenizer that adds none, GPT-2's or Llama's), ``slot_seg [N,W]`` (S for padding slots), ``cand_tokens [N,W,K,P]``,
    ``cand_len [N,W,K]`` (0 for padding candidates), ``labels [N]``, ``n_words [N]``, ``seg_word [N,S]``
    (word of a segment, -1 for special tokens: the sentence-similarity windows keep words by it).
    """

    seg_tokens: np.ndarray
    seg_len: np.ndarray
    seg_type: np.ndarray
    seg_slot: np.ndarray
    last_seg: np.ndarray
    slot_seg: np.ndarray
    cand_tokens: np.ndarray
    cand_len: np.ndarray
    labels: np.ndarray
    n_words: np.ndarray
    seg_word: np.ndarray

    @property
    def slot_valid(self):
        return self.slot_seg < self.seg_len.shape[-1]

    @property
    def cand_valid(self):
        return self.cand_len > 0

    def rows(self, index) -> "Layout":
        """The layout of the examples at ``index`` (works on NumPy and traced arrays)."""
        return jax.tree.map(lambda a: a[index], self)


jax.tree_util.register_dataclass(Layout, data_fields=[f.name for f in dataclasses.fields(Layout)], meta_fields=[])


def max_changes(n_words, budget):
    """Array version of :meth:`AttackExample.max_changes`: on the host for NumPy ``n_words`` and a
    number ``budget``, on device otherwise (``budget`` may be traced)."""
    xp = jnp if isinstance(n_words, jax.Array) or isinstance(budget, jax.Array) else np
    return xp.maximum(1, xp.ceil(budget * n_words - _BUDGET_EPS)).astype(xp.int32)


def _is_word(s: str) -> bool:
    return any(ch.isalnum() for ch in s)


def prepare_examples(
    tokenizer,
    examples: Sequence[Example],
    candidates_of,
    max_length: int,
    max_candidates: int,
    max_pieces: int = MAX_PIECES,
    same_pos: bool = False,
) -> list[AttackExample]:
    """Find the attackable words of ``examples`` and their candidates.

    ``candidates_of(word) -> list[str]`` gives a word's candidates (stop words and unknown words get
    none), or, for candidates that depend on the sentence (BERT-Attack's masked LM),
    ``candidates_of.in_context(texts, spans) -> [text][word] -> list[str]`` gives those of every word
    of every text at once; at most ``max_candidates`` are kept, dropping those longer than ``max_pieces`` tokens in
    context, and with ``same_pos`` those whose part of speech in the sentence (:mod:`.pos`, coarse
    tags) is not the word's. A word is a slot if it has a candidate left, lies wholly inside the
    (possibly truncated) token sequence in at most ``max_pieces`` tokens, and is purely alphabetic.
    """
    encoded = encode(tokenizer, examples, max_length)
    tagger = pos.tagger() if same_pos else None
    found = []  # per example: [(word index, context prefix, candidates)]
    wanted = {}
    attacked = [ex.text_b if ex.text_b is not None else ex.text for ex in examples]
    in_context = candidates_of.in_context(attacked, [enc.words for enc in encoded]) if hasattr(candidates_of, "in_context") else None
    for i, (ex, enc) in enumerate(zip(examples, encoded)):
        text = attacked[i]
        counts = np.bincount(enc.token_words[enc.token_words >= 0], minlength=len(enc.words))
        words = [text[s:e] for s, e in enc.words]
        tags = tagger.tag(words) if tagger else None
        slots = []
        for w, ((s, _), word) in enumerate(zip(enc.words, words)):
            if not word.isalpha() or not 0 < counts[w] <= max_pieces or _truncated(enc, w):
                continue
            options = [match_case(c, word) for c in (in_context[i][w] if in_context else candidates_of(word))]
            if options and tagger:
                got = tagger.candidate_tags(words, w, options, tags)
                options = [c for c, t in zip(options, got) if pos.universal(t) == pos.universal(tags[w])]
            if options:
                prefix = conventions(tokenizer).context_prefix(text, s)  # candidates tokenised in context
                slots.append((w, prefix, options))
                wanted.update((prefix + c, None) for c in options)
        found.append(slots)
    pieces = tokenize_words(tokenizer, list(wanted))
    prepared = []
    for i, (ex, enc, slots) in enumerate(zip(examples, encoded, found)):
        text = ex.text_b if ex.text_b is not None else ex.text
        ae = AttackExample(i, ex, enc, [], [], [], sum(_is_word(text[s:e]) for s, e in enc.words))
        for w, prefix, options in slots:
            ok = [c for c in options if 0 < len(pieces[prefix + c]) <= max_pieces][:max_candidates]
            if ok:
                ae.slot_words.append(w)
                ae.candidates.append(ok)
                ae.candidate_ids.append([pieces[prefix + c] for c in ok])
        prepared.append(ae)
    return prepared


def _truncated(enc: Encoded, w: int) -> bool:
    """Whether word ``w`` may have lost tokens to truncation: the last word seen, with more after it."""
    last_seen = enc.token_words.max()
    return w == last_seen and last_seen < len(enc.words) - 1


def tokenize_words(tokenizer, words: list[str]) -> dict[str, list[int]]:
    """``{word: its tokens}`` for ``words`` (each with its context prefix), special tokens left out."""
    if not words:
        return {}
    ids = tokenizer(words, add_special_tokens=False)["input_ids"]
    return dict(zip(words, ids))


def padded_length(ae: AttackExample, budget: float, max_length: int) -> int:
    """Tokens the example may reach after its allowed substitutions (capped at ``max_length``):
    its length plus the largest growths of its ``max_changes(budget)`` most-growing slots."""
    pieces = np.bincount(ae.encoded.token_words[ae.encoded.token_words >= 0], minlength=len(ae.encoded.words))
    growth = sorted(
        (max(len(ids) for ids in options) - pieces[w] for w, options in zip(ae.slot_words, ae.candidate_ids)),
        reverse=True,
    )
    return min(max_length, ae.encoded.length + sum(g for g in growth[: ae.max_changes(budget)] if g > 0))


def segment_lengths(lay: Layout, choice: np.ndarray) -> np.ndarray:
    """``[R, S]`` token count of each segment of the rows of NumPy ``lay`` with ``choice [R, W]``
    applied (before truncation)."""
    seg = np.minimum(lay.slot_seg, lay.seg_len.shape[1] - 1)
    orig = np.take_along_axis(lay.seg_len, seg, axis=1)  # [R, W]
    cand = np.take_along_axis(lay.cand_len, np.clip(choice, 0, None)[..., None], axis=2)[..., 0]
    new = np.where(choice >= 0, cand, np.where(choice == DELETE, 0, np.where(choice == UNK, 1, orig)))
    out = lay.seg_len.copy()
    rows, slots = np.nonzero(lay.slot_valid)
    out[rows, lay.slot_seg[rows, slots]] = new[rows, slots]
    return out


def token_lengths(lay: Layout, choice: np.ndarray, max_length: int) -> np.ndarray:
    """``[R]`` token lengths (truncated at ``max_length``) of the rows of NumPy ``lay`` with
    ``choice [R, W]`` applied: what :func:`build_tokens` will produce, known before building it."""
    return np.minimum(segment_lengths(lay, choice).sum(1), max_length)


def longest_length(lay: Layout, max_length: int) -> int:
    """The most tokens any choice gives a row of NumPy ``lay`` (every slot at its longest
    candidate), at most ``max_length``."""
    seg = np.minimum(lay.slot_seg, lay.seg_len.shape[1] - 1)
    growth = np.maximum(lay.cand_len.max(2) - np.take_along_axis(lay.seg_len, seg, axis=1), 0) * lay.slot_valid
    return int(min(max_length, (lay.seg_len.sum(1) + growth.sum(1)).max()))


def make_layout(
    tokenizer,
    items: Sequence[AttackExample],
    max_pieces: int = MAX_PIECES,
    num_slots: int | None = None,
    num_candidates: int | None = None,
) -> Layout:
    """Stack ``items`` into one padded :class:`Layout` (slot and candidate axes padded to the largest,
    or to ``num_slots`` / ``num_candidates``)."""
    P = max_pieces
    S = max(ae.encoded.length for ae in items)
    W = max(1, num_slots or 0, max(len(ae.slot_words) for ae in items))
    K = max(1, num_candidates or 0, max((len(c) for ae in items for c in ae.candidates), default=1))
    N = len(items)
    conv = conventions(tokenizer)
    pad, final_special = conv.pad_id, conv.suffix > 0
    lay = Layout(
        seg_tokens=np.full((N, S, P), pad, np.int32),
        seg_len=np.zeros((N, S), np.int32),
        seg_type=np.zeros((N, S), np.int32),
        seg_slot=np.full((N, S), -1, np.int32),
        last_seg=np.zeros(N, np.int32),
        slot_seg=np.full((N, W), S, np.int32),
        cand_tokens=np.full((N, W, K, P), pad, np.int32),
        cand_len=np.zeros((N, W, K), np.int32),
        labels=np.array([ae.example.label for ae in items], np.int32),
        n_words=np.array([ae.n_words for ae in items], np.int32),
        seg_word=np.full((N, S), -1, np.int32),
    )
    for n, ae in enumerate(items):
        enc = ae.encoded
        slot_of_word = {w: k for k, w in enumerate(ae.slot_words)}
        s = 0
        t = 0
        while t < enc.length:
            w = int(enc.token_words[t])
            k = slot_of_word.get(w) if w >= 0 else None
            end = t + 1
            if k is not None:
                while end < enc.length and enc.token_words[end] == w:
                    end += 1
                lay.seg_slot[n, s] = k
                lay.slot_seg[n, k] = s
            lay.seg_word[n, s] = w
            lay.seg_tokens[n, s, : end - t] = enc.input_ids[t:end]
            lay.seg_len[n, s] = end - t
            lay.seg_type[n, s] = enc.token_type_ids[t]
            s, t = s + 1, end
        lay.last_seg[n] = s - 1 if final_special else -1
        for k, options in enumerate(ae.candidate_ids):
            for c, ids in enumerate(options):
                lay.cand_tokens[n, k, c, : len(ids)] = ids
                lay.cand_len[n, k, c] = len(ids)
    return lay


def build_tokens(lay: Layout, choice: jax.Array, length: int, max_length: int, pad_id: int, unk_id: int, keep: jax.Array | None = None) -> dict:
    """Token arrays of ONE example (``lay`` holds one row) with ``choice [W]`` applied (and, with
    ``keep [S]``, only the segments it marks: a window of the text).

    Returns ``input_ids, attention_mask, token_type_ids, token_slot`` (slot of each token, -1 for
    fixed and padding tokens), each ``[length]``. Tokens past ``max_length`` are truncated as the
    tokenizer would: content is cut and the final special token, if the tokenizer adds one, kept.
    vmap it for batches.
    """
    S, P = lay.seg_tokens.shape
    W, K = lay.cand_len.shape
    slots = jnp.arange(W)
    pick = jnp.clip(choice, 0, K - 1)
    cand_tok = lay.cand_tokens[slots, pick]  # [W, P]
    cand_len = lay.cand_len[slots, pick]
    seg = jnp.minimum(lay.slot_seg, S - 1)
    orig_tok, orig_len = lay.seg_tokens[seg], lay.seg_len[seg]
    unk_tok = jnp.full((W, P), pad_id, jnp.int32).at[:, 0].set(unk_id)
    c = choice[:, None]
    new_tok = jnp.where(c >= 0, cand_tok, jnp.where(c == UNK, unk_tok, orig_tok))
    new_len = jnp.where(choice >= 0, cand_len, jnp.where(choice == DELETE, 0, jnp.where(choice == UNK, 1, orig_len)))
    seg_tokens = lay.seg_tokens.at[lay.slot_seg].set(new_tok, mode="drop")
    seg_len = lay.seg_len.at[lay.slot_seg].set(new_len, mode="drop")
    if keep is not None:
        seg_len = jnp.where(keep, seg_len, 0)

    total = seg_len.sum()
    cap = min(max_length, length)
    offsets = jnp.cumsum(seg_len) - seg_len
    is_last = jnp.arange(S) == lay.last_seg
    # A sequence longer than the cap keeps its final special token (if any) at the last position.
    offsets = jnp.where(is_last & (total > cap), cap - 1, offsets)
    pos = offsets[:, None] + jnp.arange(P)[None, :]  # [S, P]
    content_cap = cap - (lay.last_seg >= 0).astype(jnp.int32)
    keep = (jnp.arange(P)[None, :] < seg_len[:, None]) & ((pos < content_cap) | is_last[:, None])
    pos = jnp.where(keep, pos, length)  # out of range: dropped by the scatters below
    flat = pos.reshape(-1)
    ids = jnp.full(length, pad_id, jnp.int32).at[flat].set(seg_tokens.reshape(-1), mode="drop")
    types = jnp.zeros(length, jnp.int32).at[flat].set(jnp.repeat(lay.seg_type, P), mode="drop")
    token_slot = jnp.full(length, -1, jnp.int32).at[flat].set(jnp.repeat(lay.seg_slot, P), mode="drop")
    mask = (jnp.arange(length) < jnp.minimum(total, cap)).astype(jnp.int32)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types, token_slot=token_slot)
