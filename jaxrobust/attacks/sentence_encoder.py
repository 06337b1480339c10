"""Sentence-encoder similarity: the semantic constraint of the attack recipes (A2T, TextFooler).

Both recipes keep an adversarial text only if a sentence encoder finds it close to the original:
A2T compares the whole texts with SBERT, TextFooler a window around the change with the Universal
Sentence Encoder. Neither ships in the registries; all-MiniLM-L6-v2 (``bundle:minilm-l6``), an SBERT
model trained for semantic similarity, stands in for both. It runs here exactly as
sentence-transformers runs it (``Transformer -> Pooling(mean) -> Normalize``):

1. texts tokenised and cut at :data:`MAX_SEQ_LENGTH` tokens (the model's ``max_seq_length``);
2. the encoder's last hidden states averaged over the attended tokens (padding excluded);
3. the average divided by its L2 norm, so that the dot product of two embeddings is their cosine.

``SentenceEncoder(ref).embed(texts)`` gives ``[B, H]`` unit rows, ``similarity(a, b)`` the cosine
of each pair. Batches have the fixed shapes of :mod:`.shapes`, shared with the similarity checks
inside the attacks (:func:`embed_tokens`).
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from jaxrobust.attacks import shapes
from jaxrobust.attacks.victim import Victim, forward, model_inputs, split_model
from jaxrobust.data.conventions import conventions
from jaxrobust.errors import JaxRobustError

MAX_SEQ_LENGTH = 256  # all-MiniLM-L6-v2's sentence_bert_config.json
DEFAULT_ENCODER = "bundle:minilm-l6"


def embed_tokens(encoder: Victim, params, tokens: dict) -> jax.Array:
    """``[B, H]`` unit sentence embeddings of token arrays ``[B, L]`` (``encoder``: the model's static
    half, ``params`` its weights: :func:`~jaxrobust.attacks.victim.split_model`). The program is
    :func:`~jaxrobust.attacks.victim.forward`, shared with a victim of the encoder's architecture."""
    return forward(encoder.architecture, params, model_inputs(tokens))[1]


class SentenceEncoder:
    """A sentence encoder loaded from ``ref`` (a local Hugging Face folder, ``bundle:ID`` or hub id).

    ``static`` and ``params`` are the model split as attacks take a model (:mod:`.victim`), so a
    jitted search can embed the texts it builds (:mod:`.constraints`, :mod:`.gradient`).
    """

    def __init__(self, ref: str = DEFAULT_ENCODER, *, max_length: int = MAX_SEQ_LENGTH, batch_size: int = shapes.ROWS):
        from jaxrobust.models import load_classifier

        if batch_size < 1 or max_length < 2:
            raise JaxRobustError(f"sentence encoder needs batch_size >= 1 and max_length >= 2, got {batch_size} and {max_length}")
        loaded = load_classifier(ref, random_head=False)  # only the encoder is used: a missing head is left zeros
        self.ref, self.tokenizer = ref, loaded.tokenizer
        self.max_length, self.batch_size = max_length, batch_size
        self.dim = loaded.config.hidden_size
        tok = loaded.tokenizer
        conv = conventions(tok)
        self.static, self.params = split_model(loaded.model, conv.pad_id, conv.unk_id, max_length)
        self._embedded: dict[str, np.ndarray] = {}  # text -> its unit row
        # Texts asked for ahead (:meth:`queue`), embedded in the free rows of the search's batches.
        self.waiting = shapes.FreeRows(max_length, conv.pad_id)
        self._queued: set[str] = set()

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"] if texts else []

    def queue(self, texts: Sequence[str]) -> None:
        """Tokenise ``texts`` now and embed them whenever a batch of their length has a free row
        (:attr:`waiting`, filled by the similarity filter's batches): :meth:`embed` finds them done."""
        new = [t for t in dict.fromkeys(texts) if t not in self._embedded and t not in self._queued]
        self._queued.update(new)
        self.waiting.add(new, self._ids(new))

    def store(self, texts: Sequence[str], rows: np.ndarray) -> None:
        """Keep the unit rows ``[len(texts), H]`` computed for ``texts`` (the filled rows of a batch)."""
        self._embedded.update(zip(texts, np.asarray(rows)))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), H]`` float32 unit rows. Each distinct text is embedded once per encoder (the
        same originals come back for every budget and run of a sweep)."""
        new = [t for t in dict.fromkeys(texts) if t not in self._embedded]
        ids = self._ids(new)
        for rows, padded, length in shapes.length_batches([len(i) for i in ids], self.batch_size, self.max_length):
            tokens = shapes.pad_tokens([ids[r] for r in padded], length, self.static.pad_id)
            got = np.asarray(embed_tokens(self.static, self.params, tokens))
            self._embedded.update((new[r], row) for r, row in zip(rows, got))
        return np.stack([self._embedded[t] for t in texts]) if len(texts) else np.zeros((0, self.dim), np.float32)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """``[N]`` cosine similarity of each pair ``(a[i], b[i])``."""
        if len(a) != len(b):
            raise ValueError(f"similarity of pairs needs as many texts on each side, got {len(a)} and {len(b)}")
        return (self.embed(a) * self.embed(b)).sum(-1)
