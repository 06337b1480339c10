"""Synonym substitutions at the token level, for objectives that perturb words inside training.

ASCC and RIFT search over the convex hull of a word's embedding and its synonyms' embeddings, for
every word of every training batch, inside the jitted step. Training batches are token ids, so the
candidates are looked up per token, with this rule (documented in the README):

* a token may be substituted only if it is a whole word on its own: a whole-word token (WordPiece:
  not a ``##`` piece; byte-level BPE: a ``Ġword`` token; SentencePiece: a ``▁word`` token,
  :mod:`jaxrobust.data.conventions`) that the next token does not continue;
* its candidates are the synonyms (from a :class:`~jaxrobust.attacks.synonyms.CandidateTable`) that
  are whole-word tokens themselves;
* stop words, special tokens, capitalised tokens of cased vocabularies and words split into pieces
  keep their token.

Multi-token words are thus left alone in training; the attacks (which handle them) still attack them.

Shapes: ``V`` vocabulary, ``S = 1 + K`` slots per token (slot 0: the token itself).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxrobust.attacks.synonyms import CandidateTable, whole_word_tokens
from jaxrobust.data import conventions


@dataclasses.dataclass
class TokenSubstitutions:
    """``ids [V, S]`` int32: slot 0 the token itself, then its candidate tokens (0 at padding);
    ``mask [V, S]`` bool: real slots; ``continues [V]`` bool: tokens that continue the word before
    them (a token followed by one is not a whole word); ``special [V]`` bool: the tokenizer's
    special tokens (what a budget of a share of the tokens does not count)."""

    ids: np.ndarray
    mask: np.ndarray
    continues: np.ndarray
    special: np.ndarray

    def content(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """``[B]`` int32: the attended tokens of each row that are not special tokens (each
        family adds its own: two for BERT and RoBERTa, one for Llama and Gemma, none for GPT-2)."""
        return ((attention_mask > 0) & ~self.special[input_ids]).sum(1).astype(np.int32)

    def of(self, input_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slots of a batch ``input_ids [B, L]``: ``(ids [B, L, S], mask [B, L, S])``; a position
        that may not be substituted has slot 0 only."""
        ids, mask = self.ids[input_ids], self.mask[input_ids]
        following = np.concatenate([input_ids[:, 1:], input_ids[:, -1:]], axis=1)
        split_word = self.continues[following]
        split_word[:, -1] = False  # nothing follows the last position
        mask[..., 1:] &= ~split_word[..., None]
        return ids, mask


def token_substitutions(tokenizer, table: CandidateTable, k: int) -> TokenSubstitutions:
    """At most ``k`` candidate tokens for every whole-word token of ``tokenizer``'s vocabulary."""
    vocab = tokenizer.get_vocab()
    size = max(len(tokenizer), max(vocab.values()) + 1)
    scheme = conventions.conventions(tokenizer).scheme
    words = whole_word_tokens(vocab, set(tokenizer.all_special_tokens), scheme)  # lower-case word -> token
    ids = np.zeros((size, 1 + k), np.int32)
    ids[:, 0] = np.arange(size)
    mask = np.zeros((size, 1 + k), bool)
    mask[:, 0] = True
    for word, token in words.items():
        found = [words.get(c) for c in table.candidates(word)]
        found = [t for t in found if t is not None and t != token][:k]
        ids[token, 1 : 1 + len(found)] = found
        mask[token, 1 : 1 + len(found)] = True
    special = np.zeros(size, bool)
    special[[i for i in tokenizer.all_special_ids if i is not None and i < size]] = True
    return TokenSubstitutions(ids, mask, _continuation_tokens(vocab, size, scheme), special)


def _continuation_tokens(vocab: dict[str, int], size: int, scheme: str) -> np.ndarray:
    """``[V]`` bool: the tokens that continue the word before them (:func:`conventions.continues`)."""
    out = np.zeros(size, bool)
    for token, i in vocab.items():
        out[i] = conventions.continues(scheme, token)
    return out
