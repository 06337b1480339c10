"""Each attack recipe's constraints on its substitutions: part of speech and sentence similarity.

A substitution counts only if a reader would say the text still means the same. Besides the candidate
set itself (synonyms, stop words never changed, the word budget, one change per word), the published
recipes constrain every substitution:

* **part of speech** (``pos``): the substitute keeps the replaced word's coarse (universal) tag in
  context (:mod:`.pos`). It is a mask: :func:`~jaxrobust.attacks.layout.prepare_examples` drops
  the failing candidates while the candidates are laid out, so the search never sees them.
* **sentence similarity** (``similarity``): the perturbed text stays close to the original under the
  sentence encoder (:mod:`.sentence_encoder`). It depends on every change made so far, so
  :class:`SimilarityFilter` checks each trial text on device before the trial is queried: a trial
  that fails is never sent to the model. With a ``window``, the compared texts are the
  ``window`` words around each changed word (TextAttack's ``text_window_around_index``), and every
  changed word's window must pass; without one, the whole texts. For a pair task the compared
  text is the attacked one (the hypothesis).

Recipe defaults (:data:`RECIPES`), as the papers and TextAttack's recipes apply them:

==========  ======================================================================================
gradient    A2T (Yoo & Qi 2021): part of speech, cosine >= 0.9 of the whole text
textfooler  TextFooler (Jin et al. 2020): part of speech, angular similarity >= 0.840845 of the
            15-word window around each change (1 - arccos(cos)/pi, about cosine 0.878)
pwws        none: its WordNet candidates and stop words only, as published
genetic     none here: its word-embedding distance is the candidate set; its language-model filter
            (``--lm-filter``, :mod:`.language_model`) is a candidate mask, off by default
ascc        none: the candidate set the training objectives use
bertattack  TextFooler's (part of speech, window similarity): Li et al.'s own threshold, cosine
            >= 0.2 of the whole text, keeps a masked LM's fluent words of another meaning
==========  ======================================================================================

The string-level check (:mod:`.verify`) re-checks both on every final text.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import jax
import numpy as np

from jaxrobust.attacks import shapes
from jaxrobust.attacks.layout import ORIGINAL, AttackExample, Layout, build_tokens, longest_length, make_layout, segment_lengths, tokenize_words
from jaxrobust.attacks.sentence_encoder import SentenceEncoder, embed_tokens
from jaxrobust.attacks.victim import Victim, model_inputs
from jaxrobust.data.conventions import conventions
from jaxrobust.data.encoding import encode
from jaxrobust.data.tasks import Example
from jaxrobust.errors import JaxRobustError

NAMES = ("pos", "similarity")
METRICS = ("cosine", "angular")
# Device batches of other shapes differ in the last float32 bits: the string-level re-check allows
# this much below the threshold, so that a trial accepted on device is never rejected for noise.
RECHECK_SLACK = 1e-4


@dataclasses.dataclass(frozen=True)
class Constraints:
    """The constraints one attack applies (all off by default)."""

    pos: bool = False
    similarity: float | None = None  # threshold on ``metric``; None: no similarity constraint
    window: int | None = None  # words compared around each changed word; None: the whole text
    metric: str = "cosine"

    def __post_init__(self):
        if self.similarity is not None and not 0 <= self.similarity <= 1:
            raise JaxRobustError(f"similarity threshold must be in [0, 1], got {self.similarity}")
        if self.window is not None and self.window < 1:
            raise JaxRobustError(f"--window must be at least 1 word, got {self.window}")
        if self.metric not in METRICS:
            raise JaxRobustError(f"unknown similarity metric {self.metric!r}; choose one of {', '.join(METRICS)}")

    @property
    def tag(self) -> str:
        """Short form for report names: ``none``, ``pos``, ``pos-sim0.9``, ``pos-asim0.840845-w15``."""
        parts = ["pos"] if self.pos else []
        if self.similarity is not None:
            metric = "a" if self.metric == "angular" else ""
            parts.append(f"{metric}sim{self.similarity:g}" + (f"-w{self.window}" if self.window else ""))
        return "-".join(parts) or "none"

    def score(self, cos: np.ndarray) -> np.ndarray:
        """The recipe's similarity of texts whose embeddings have cosine ``cos``."""
        cos = np.clip(cos, -1.0, 1.0)
        return cos if self.metric == "cosine" else 1.0 - np.arccos(cos) / math.pi


RECIPES = {
    "gradient": Constraints(pos=True, similarity=0.9),
    "textfooler": Constraints(pos=True, similarity=0.840845, window=15, metric="angular"),
    "pwws": Constraints(),
    "genetic": Constraints(),
    "ascc": Constraints(),
    # BERT-Attack's own threshold (sentence-encoder cosine >= 0.2 of the whole text) lets a masked
    # LM's fluent but other-meaning words through; here its candidates meet TextFooler's bar.
    "bertattack": Constraints(pos=True, similarity=0.840845, window=15, metric="angular"),
}
A2T_SIMILARITY = RECIPES["gradient"]  # what ``similarity`` means for a recipe that has none of its own


def parse(spec: str, attack: str, threshold: float | None = None, window: int | None = None) -> Constraints:
    """The constraints of ``attack`` that ``spec`` names: ``default`` (the recipe's), ``none``, or a
    comma list of :data:`NAMES`; ``threshold`` / ``window`` replace the similarity's own."""
    recipe = RECIPES[attack]
    if spec == "default":
        chosen = recipe
    elif spec == "none":
        chosen = Constraints()
    else:
        names = [n.strip() for n in spec.split(",")]
        unknown = [n for n in names if n not in NAMES]
        if unknown or not names:
            raise JaxRobustError(f"unknown constraint {', '.join(unknown) or spec!r}; choose default, none, or a comma list of {', '.join(NAMES)}")
        sim = recipe if recipe.similarity is not None else A2T_SIMILARITY
        chosen = Constraints(pos="pos" in names)
        if "similarity" in names:
            chosen = dataclasses.replace(chosen, similarity=sim.similarity, window=sim.window, metric=sim.metric)
    if (threshold is not None or window is not None) and chosen.similarity is None:
        raise JaxRobustError(f"--similarity-threshold and --window need the similarity constraint, which {spec!r} leaves out for {attack}")
    if threshold is not None:
        chosen = dataclasses.replace(chosen, similarity=threshold)
    if window is not None:
        chosen = dataclasses.replace(chosen, window=window)
    return chosen


# ---------------------------------------------------------------------------------------------
# Windows


def window_bounds(text_words: Sequence[str], window: int | None) -> np.ndarray:
    """``[n_words, 2]`` first and one-past-last word index of the window around each word of a text
    (``text_words``: its words, punctuation included). The window counts alphanumeric words only, as
    TextAttack's words do: ``window`` of them centred on the word, shifted to fit inside the text;
    punctuation between them is part of it. Without a window: the whole text."""
    n = len(text_words)
    if window is None:
        return np.tile([0, n], (n, 1))
    alnum = [i for i, w in enumerate(text_words) if any(ch.isalnum() for ch in w)]
    rank = np.searchsorted(alnum, np.arange(n))  # alphanumeric rank of each word (or the next one's)
    bounds = np.zeros((n, 2), np.int64)
    half = (window - 1) / 2
    for i in range(n):
        r = min(int(rank[i]), len(alnum) - 1)
        if r - half < 0:
            lo, hi = 0, min(window - 1, len(alnum) - 1)
        elif r + half >= len(alnum):
            lo, hi = max(0, len(alnum) - window), len(alnum) - 1
        else:
            lo, hi = r - math.ceil(half), r + math.floor(half)
        bounds[i] = alnum[lo], alnum[hi] + 1
    return bounds


def window_text(text: str, spans: Sequence[tuple[int, int]], lo: int, hi: int) -> str:
    """The characters of ``text`` from word ``lo`` to word ``hi - 1`` (``spans``: its word spans)."""
    return text[spans[lo][0] : spans[hi - 1][1]]


# ---------------------------------------------------------------------------------------------
# The similarity check inside the search


def _twin(tokenizer, ae: AttackExample, max_length: int) -> AttackExample:
    """``ae`` in ``tokenizer``'s tokens: the attacked text alone, the same slots and candidates."""
    (enc,) = encode(tokenizer, [Example(ae.text, ae.example.label)], max_length)
    prefixes = [conventions(tokenizer).context_prefix(ae.text, ae.encoded.words[w][0]) for w in ae.slot_words]
    ids = tokenize_words(tokenizer, list(dict.fromkeys(p + c for p, options in zip(prefixes, ae.candidates) for c in options)))
    candidate_ids = [[ids[p + c] for c in options] for p, options in zip(prefixes, ae.candidates)]
    return AttackExample(ae.index, Example(ae.text, ae.example.label), enc, list(ae.slot_words), ae.candidates, candidate_ids, ae.n_words)


@functools.partial(jax.jit, static_argnames=("encoder", "length"))
def _window_tokens(encoder: Victim, lay: Layout, choice, lo, hi, *, length: int) -> dict:
    """Encoder token arrays ``[R, length]`` of rows ``lay`` with ``choice [R, W]``, the words
    outside ``[lo, hi)`` (``[R]`` each) left out and the special tokens kept."""

    def tokens(row, c, a, b):
        keep = (row.seg_word < 0) | ((row.seg_word >= a) & (row.seg_word < b))
        return model_inputs(build_tokens(row, c, length, encoder.max_length, encoder.pad_id, encoder.unk_id, keep=keep))

    return jax.vmap(tokens)(lay, choice, lo, hi)


def _unseen(keys: Sequence, known: dict) -> np.ndarray:
    """Indices of the first occurrence of each of ``keys`` not in ``known`` (what is left to compute)."""
    first: dict = {}
    for i, k in enumerate(keys):
        if k not in known:
            first.setdefault(k, i)
    return np.fromiter(first.values(), np.int64, len(first))


class SimilarityFilter:
    """Which trial texts of a group pass the similarity constraint ``rules`` (see module docstring).

    The group's slots and candidates are laid out a second time in the encoder's tokens, so one
    ``choice [R, W]`` gives both the victim's tokens and the encoder's. Every distinct window (of the
    original or of a trial) is embedded once and its score kept.
    """

    def __init__(self, encoder: SentenceEncoder, members: Sequence[AttackExample], rules: Constraints, shape: tuple[int, int]):
        self.encoder, self.rules, self.chunk = encoder, rules, encoder.batch_size  # the encoder's programs
        tok = encoder.tokenizer
        self.twins = twins = [_twin(tok, ae, encoder.max_length) for ae in members]
        pieces = max([1] + [len(ids) for t in twins for options in t.candidate_ids for ids in options]
                     + [int(np.bincount(t.encoded.token_words[t.encoded.token_words >= 0]).max(initial=1)) for t in twins])
        W, K = shape
        self.layout = make_layout(tok, twins, max_pieces=pieces, num_slots=W, num_candidates=K)
        # Window tokens are built at the longest bucket any choice reaches (one program), then cut.
        self._longest = int(shapes.bucket(longest_length(self.layout, encoder.max_length), encoder.max_length))
        N = len(twins)
        self.bounds = np.zeros((N, W, 2), np.int64)  # window of each slot's word
        self.slot_word = np.full((N, W), -1, np.int64)  # word index of each slot (-1: padding)
        for n, t in enumerate(twins):
            words = [t.text[s:e] for s, e in t.encoded.words]
            b = window_bounds(words, rules.window)
            self.bounds[n, : len(t.slot_words)] = b[t.slot_words]
            self.slot_word[n, : len(t.slot_words)] = t.slot_words
        # Each distinct compared text is embedded once per filter. A window is named by (member, first
        # word, end word, the changes inside it): the windows of earlier changes that a new change
        # does not reach, and the identical windows of a text shorter than the window, come back free.
        self._reference: dict[tuple[int, int, int], np.ndarray] = {}  # the original's window -> unit row
        self._window_scores: dict[tuple[int, int, int, bytes], float] = {}
        self._scores: dict[tuple[int, bytes], float] = {}  # (member, choice bytes) -> score
        self.passes = np.zeros(N, np.int64)  # encoder rows per member (perturbed windows only)

    def _embed(self, member: np.ndarray, choice: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """``[R, H]`` embeddings of ``choice`` rows restricted to words ``[lo, hi)``."""
        lay = self.layout.rows(member)
        keep = (lay.seg_word < 0) | ((lay.seg_word >= lo[:, None]) & (lay.seg_word < hi[:, None]))
        lengths = np.minimum((segment_lengths(lay, choice) * keep).sum(1), self.encoder.max_length)
        out = np.zeros((len(member), self.encoder.dim), np.float32)
        for rows, padded, length in shapes.length_batches(lengths, self.chunk, self.encoder.max_length):
            tokens = _window_tokens(self.encoder.static, self.layout.rows(member[padded]), choice[padded], lo[padded], hi[padded], length=self._longest)
            tokens, riders = self.encoder.waiting.fill(shapes.fit(tokens, length), len(rows))
            got = np.asarray(embed_tokens(self.encoder.static, self.encoder.params, tokens))
            out[rows] = got[: len(rows)]
            if riders:  # the string check's texts, queued ahead (:meth:`SentenceEncoder.queue`)
                self.encoder.store(riders, got[len(rows) : len(rows) + len(riders)])
        return out

    def _window(self, member: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Word bounds ``[lo, hi)`` of the text compared for each (member, changed slot)."""
        if self.rules.window:
            return self.bounds[member, slot, 0], self.bounds[member, slot, 1]
        return np.zeros(len(member), np.int64), np.full(len(member), np.iinfo(np.int32).max, np.int64)

    def scores(self, member: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """``[R]`` lowest similarity (``rules.metric``) over the compared windows of each text
        ``member [R]``, ``choice [R, W]``; 1.0 for an unchanged text. Each text is scored once per
        filter: the runs of a sweep, searching the same group, try many of the same texts."""
        member, choice = np.asarray(member, np.int64), np.asarray(choice, np.int32)
        keys = [(m, c.tobytes()) for m, c in zip(member.tolist(), choice)]
        new = _unseen(keys, self._scores)
        if len(new):
            self._scores.update(zip((keys[i] for i in new), self._compute(member[new], choice[new])))
        return np.array([self._scores[k] for k in keys], np.float64)

    def _compute(self, member: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """:meth:`scores` of texts not seen yet: the lowest score over the windows of their changed
        words (or of the whole texts), each distinct window embedded once."""
        if self.rules.window:
            r, slot = np.nonzero(choice >= 0)  # every changed word's window
        else:
            r = np.flatnonzero((choice >= 0).any(1))
            slot = np.zeros(len(r), np.int64)
        out = np.ones(len(member))
        if not len(r):
            return out
        m = member[r]
        lo, hi = self._window(m, slot)
        word = self.slot_word[m]
        inside = np.where((word >= lo[:, None]) & (word < hi[:, None]), choice[r], ORIGINAL)  # [P, W]
        keys = [(a, b, c, s.tobytes()) for a, b, c, s in zip(m.tolist(), lo.tolist(), hi.tolist(), inside)]
        new = _unseen(keys, self._window_scores)
        if len(new):
            reference = self._references(m[new], lo[new], hi[new])
            got = self._embed(m[new], inside[new], lo[new], hi[new])
            np.add.at(self.passes, m[new], 1)
            self._window_scores.update(zip((keys[i] for i in new), self.rules.score((got * reference).sum(-1)).tolist()))
        np.minimum.at(out, r, np.array([self._window_scores[k] for k in keys]))
        return out

    def allowed(self, member: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """``[R]``: whether each text passes the threshold (unchanged texts pass)."""
        return self.scores(member, choice) >= self.rules.similarity

    def _references(self, member: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """``[R, H]`` embeddings of the original texts' windows ``[lo, hi)``, each computed once."""
        keys = list(zip(member.tolist(), lo.tolist(), hi.tolist()))
        need = _unseen(keys, self._reference)
        if len(need):
            clean = np.full((len(need), self.layout.slot_seg.shape[1]), ORIGINAL, np.int32)
            self._reference.update(zip((keys[i] for i in need), self._embed(member[need], clean, lo[need], hi[need])))
        return np.stack([self._reference[k] for k in keys])


# ---------------------------------------------------------------------------------------------
# The string-level re-check


def string_pairs(rules: Constraints, original: str, perturbed: str, changed: Sequence[int]) -> list[tuple[str, str]]:
    """The ``(original, perturbed)`` texts the string-level re-check compares for one text: the
    windows of the ``changed`` words (word indices, shared by both texts), or the whole texts
    without a window; none if nothing changed."""
    from jaxrobust.data.encoding import word_spans

    if not changed:
        return []
    if rules.window is None:
        return [(original, perturbed)]
    a_spans, b_spans = word_spans(original), word_spans(perturbed)
    bounds = window_bounds([original[s:e] for s, e in a_spans], rules.window)  # as the search: the original's words
    return [(window_text(original, a_spans, *bounds[w]), window_text(perturbed, b_spans, *bounds[w])) for w in changed]


def string_similarities(encoder: SentenceEncoder, rules: Constraints, texts: Sequence[tuple[str, str, Sequence[int]]]) -> np.ndarray:
    """``[N]`` for each ``(original, perturbed, changed)``: the lowest similarity (``rules.metric``)
    over the texts of :func:`string_pairs`; 1.0 if nothing changed. All texts are embedded in one
    batched call."""
    owner, left, right = [], [], []
    for i, text in enumerate(texts):
        pairs = string_pairs(rules, *text)
        owner += [i] * len(pairs)
        left += [a for a, _ in pairs]
        right += [b for _, b in pairs]
    out = np.ones(len(texts))
    if owner:
        np.minimum.at(out, np.asarray(owner), rules.score(encoder.similarity(left, right)))
    return out


def string_similarity(encoder: SentenceEncoder, rules: Constraints, original: str, perturbed: str, changed: Sequence[int]) -> float:
    """:func:`string_similarities` of one text."""
    return float(string_similarities(encoder, rules, [(original, perturbed, changed)])[0])
