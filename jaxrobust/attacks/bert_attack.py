"""BERT-Attack (Li et al., EMNLP 2020): a word's candidates are a masked LM's predictions in context.

The masked LM (:mod:`jaxrobust.models.masked_lm`, ``--mlm REF``) reads each attacked text once,
unmasked, as the paper does; a word's candidates are what it predicts at the word's own positions:

* a word that is one MLM token: its ``pool`` (48, TextAttack's) likeliest tokens that spell a whole
  word where a word starts;
* a word of 2 or 3 MLM tokens: the combinations of the ``per_piece`` (4) likeliest tokens at each
  of its positions -- a word start, then continuations -- ranked by their mean log-probability
  (TextAttack's perplexity ranking of BERT-Attack's sub-word combinations);

keeping, best first, alphabetic words that are not the word itself (case-insensitively), not a
stop word and not a WordNet antonym of it (Li et al. filter antonyms with a synonym dictionary: a
masked LM predicts "bad" where "good" stands). The attack keeps the first ``k`` (4 in the setting
of Turbal et al.) and searches them greedily in the order of the words' importance, measured by
replacing each word with the unknown token (TextAttack's ``GreedyWordSwapWIR("unk")``;
:func:`jaxrobust.attacks.blackbox.bertattack_group`).
"""

from __future__ import annotations

import functools
import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrobust.attacks import wordnet
from jaxrobust.attacks.synonyms import STOP_WORDS
from jaxrobust.data.conventions import conventions
from jaxrobust.models.masked_lm import MaskedLM

POOL = 48  # predictions looked at for a one-token word
PER_PIECE = 4  # predictions combined per position of a word of several tokens
MAX_PIECES = 3


@functools.partial(nnx.jit, static_argnames="top")
def _top_predictions(encoder, head, ids, mask, *, top: int):
    """``[B, L]`` -> log-probabilities and ids of the ``top`` likeliest tokens ``[B, L, top]``."""
    logp = jax.nn.log_softmax(head(encoder(input_ids=ids, attention_mask=mask).last_hidden_state), axis=-1)
    return jax.lax.top_k(logp, top)


@functools.cache
def _antonyms() -> frozenset[tuple[str, str]]:
    return wordnet.lemma_graph().antonyms(wordnet.ANTONYM_RANK)


class MaskedLMCandidates:
    """Context-dependent candidates for :func:`~jaxrobust.attacks.layout.prepare_examples`."""

    def __init__(self, mlm: MaskedLM, batch_size: int = 16, max_length: int = 128):
        self.mlm, self.batch_size, self.max_length = mlm, batch_size, max_length
        self.conv = conventions(mlm.tokenizer)

    def in_context(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[list[list[str]]]:
        """For each text, the candidates of each of its words (``spans``: character spans), best first."""
        tok = self.mlm.tokenizer
        enc = tok(list(texts), truncation=True, max_length=self.max_length, return_offsets_mapping=True)
        out = []
        for start in range(0, len(texts), self.batch_size):
            rows = range(start, min(start + self.batch_size, len(texts)))
            length = max(len(enc["input_ids"][r]) for r in rows)
            ids = np.full((len(rows), length), self.conv.pad_id, np.int32)
            mask = np.zeros((len(rows), length), np.int32)
            for j, r in enumerate(rows):
                ids[j, : len(enc["input_ids"][r])], mask[j, : len(enc["input_ids"][r])] = enc["input_ids"][r], 1
            pool = min(POOL, self.mlm.head.bias.shape[0])
            logp, top = jax.device_get(_top_predictions(self.mlm.encoder, self.mlm.head, jnp.asarray(ids), jnp.asarray(mask), top=pool))
            for j, r in enumerate(rows):
                offsets = enc["offset_mapping"][r]
                out.append([self._word_candidates(texts[r][s:e], _positions(offsets, s, e), logp[j], top[j]) for s, e in spans[r]])
        return out

    def _word_candidates(self, word: str, positions: list[int], logp: np.ndarray, top: np.ndarray) -> list[str]:
        """``logp, top [L, POOL]``: the predictions at every position of the text."""
        if not positions or len(positions) > MAX_PIECES:
            return []
        tokens = self.mlm.tokenizer.convert_ids_to_tokens
        if len(positions) == 1:  # (a model's vocabulary may be larger than its tokenizer's: no token, None)
            spelled = [self.conv.word_of(t) if t else None for t in tokens(top[positions[0]].tolist())]
        else:
            choices = [range(PER_PIECE)] * len(positions)
            combos = sorted(itertools.product(*choices), key=lambda c: -np.mean([logp[p, i] for p, i in zip(positions, c)]))
            spelled = [self._spell(tokens([int(top[p, i]) for p, i in zip(positions, c)])) for c in combos]
        kept, lower = [], word.lower()
        for w in spelled:
            if w and w.isalpha() and w.lower() != lower and w.lower() not in STOP_WORDS and (lower, w.lower()) not in _antonyms():
                if w not in kept:
                    kept.append(w)
        return kept

    def _spell(self, pieces: list[str]) -> str | None:
        """The word spelled by a word-start token and its continuations, or None."""
        first = self.conv.word_of(pieces[0]) if pieces[0] else None
        if first is None or not all(p and self.conv.continues(p) for p in pieces[1:]):
            return None
        return first + "".join(p.removeprefix("##") for p in pieces[1:])


def _positions(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """Token positions whose characters lie in ``[start, end)`` (special tokens have empty spans)."""
    return [i for i, (s, e) in enumerate(offsets) if e > s and s >= start and e <= end]
