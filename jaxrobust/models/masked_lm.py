"""A masked language model: an encoder with its pre-training head, for BERT-Attack's candidates.

``load_masked_lm(ref)`` reads a ``BertForMaskedLM`` or ``RobertaForMaskedLM`` checkpoint (a folder,
``bundle:ID`` or hub id): the encoder as :func:`~jaxrobust.models.load_classifier` reads it, and the
head transformers puts on top, ``dense -> activation -> LayerNorm -> [H, V] decoder + bias``
(BERT: ``cls.predictions.*``, its decoder tied to the word embeddings; RoBERTa: ``lm_head.*``).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrobust import assets
from jaxrobust.errors import JaxRobustError
from jaxrobust.models.encoder import _ACT, SequenceClassifier
from jaxrobust.models.loading import load_classifier, weight_files
from jaxrobust.models.weights import SafetensorFiles

# model_type -> the head's checkpoint keys (dense, LayerNorm, bias, decoder) and its activation
# (RoBERTa's head uses gelu whatever the config says; BERT's the config's hidden_act).
_HEAD_KEYS = {
    "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias", "cls.predictions.decoder.weight", None),
    "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder.weight", "gelu"),
}


class MaskedLMHead(nnx.Module):
    """``[B, L, H]`` hidden states -> ``[B, L, V]`` token logits."""

    def __init__(self, hidden: int, vocab: int, eps: float, activation: str, rngs: nnx.Rngs):
        self.dense = nnx.Linear(hidden, hidden, rngs=rngs)
        self.norm = nnx.LayerNorm(hidden, epsilon=eps, rngs=rngs)
        self.decoder = nnx.Param(jnp.zeros((vocab, hidden)))  # [V, H], PyTorch's layout
        self.bias = nnx.Param(jnp.zeros((vocab,)))
        self.act = _ACT[activation]

    def __call__(self, hidden: jax.Array) -> jax.Array:
        return self.norm(self.act(self.dense(hidden))) @ self.decoder[...].T + self.bias[...]


@dataclasses.dataclass
class MaskedLM:
    ref: str
    encoder: SequenceClassifier
    head: MaskedLMHead
    tokenizer: object

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """``[B, L]`` token ids and mask -> ``[B, L, V]`` logits (float32)."""
        return np.asarray(_logits(self.encoder, self.head, jnp.asarray(input_ids), jnp.asarray(attention_mask)))


@nnx.jit
def _logits(encoder, head, ids, mask):
    return head(encoder(input_ids=ids, attention_mask=mask).last_hidden_state)


@functools.cache
def load_masked_lm(ref: str) -> MaskedLM:
    """The masked LM of ``ref``; one line naming what it found when ``ref`` has no masked-LM head."""
    path = assets.resolve(ref)
    loaded = load_classifier(ref, 2, random_head=False)  # the classification head is never read
    model_type = loaded.config.model_type
    if model_type not in _HEAD_KEYS:
        raise JaxRobustError(f"--mlm {ref}: a {model_type} model has no masked-LM head this project reads (supported: {', '.join(_HEAD_KEYS)})")
    dense, norm, bias, decoder, activation = _HEAD_KEYS[model_type]
    tensors = SafetensorFiles(weight_files(path))
    if f"{dense}.weight" not in tensors:
        heads = sorted({k.split(".")[0] for k in tensors} - {"bert", "roberta", "embeddings", "encoder"})
        found = ", ".join(heads) or "the encoder alone"
        archs = ", ".join(loaded.hf_config.get("architectures") or ["none named"])
        raise JaxRobustError(f"--mlm {ref} has no masked-LM head (no {dense}.weight; found {found}; architectures: {archs}); "
                             "give a *ForMaskedLM checkpoint such as bert-base-uncased")
    cfg = loaded.config
    head = MaskedLMHead(cfg.hidden_size, cfg.vocab_size, cfg.layer_norm_eps, activation or cfg.hidden_act, nnx.Rngs(0))
    head.dense.kernel[...] = jnp.asarray(tensors[f"{dense}.weight"].T)
    head.dense.bias[...] = jnp.asarray(tensors[f"{dense}.bias"])
    head.norm.scale[...] = jnp.asarray(tensors[f"{norm}.weight"])
    head.norm.bias[...] = jnp.asarray(tensors[f"{norm}.bias"])
    head.bias[...] = jnp.asarray(tensors[bias])
    # Tied to the word embeddings in every released checkpoint, so usually not stored.
    head.decoder[...] = jnp.asarray(tensors[decoder]) if decoder in tensors else loaded.model.word_embeddings
    return MaskedLM(ref, loaded.model, head, loaded.tokenizer)
