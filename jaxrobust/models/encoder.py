"""BERT-family encoders (BERT, RoBERTa, MPNet) with a sequence-classification head, in Flax NNX.

One post-LayerNorm transformer covers the three families; they differ only in
* position ids: BERT counts 0..L-1; RoBERTa and MPNet count real tokens from ``pad_id + 1`` and give
  padding the position ``pad_id`` (we derive them from the attention mask, so running from input
  embeddings gives the same positions as running from ids);
* token types: MPNet has none;
* MPNet adds a learned relative-position bias (T5-style buckets, shared by all layers) to the
  attention scores;
* the head: BERT pools [CLS] through dense+tanh (the pooler) then a linear layer; RoBERTa and MPNet
  apply dense+tanh to <s> inside the classification head. Either way ``pooled`` is the feature the
  final linear layer reads.

Shapes: B batch, L sequence length, H hidden size, N heads, C labels.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrobust.models.config import EncoderConfig

_ACT = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


class ClassifierOutput(NamedTuple):
    logits: jax.Array  # [B, C]
    pooled: jax.Array  # [B, H] feature read by the final linear layer
    last_hidden_state: jax.Array  # [B, L, H]
    hidden_states: tuple[jax.Array, ...] | None  # embedding output + every layer, each [B, L, H]


def dtypes(cfg) -> dict:
    """The ``dtype`` / ``param_dtype`` keywords of flax layers for a model config."""
    return {"dtype": jnp.dtype(cfg.dtype), "param_dtype": jnp.dtype(cfg.param_dtype)}


def _dense(cfg: EncoderConfig, n_in: int, n_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    init = nnx.initializers.normal(0.02)  # Hugging Face's initializer_range default
    return nnx.Linear(n_in, n_out, kernel_init=init, rngs=rngs, **dtypes(cfg))


def _layer_norm(cfg: EncoderConfig, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(cfg.hidden_size, epsilon=cfg.layer_norm_eps, rngs=rngs, **dtypes(cfg))


def relative_position_buckets(length: int, num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """MPNet/T5 bidirectional buckets of ``key - query`` offsets, ``[L, L]`` int32.

    Computed with NumPy in float32 at trace time (L is static), matching transformers' arithmetic.
    """
    pos = np.arange(length)
    n = -(pos[None, :] - pos[:, None])
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        scaled = np.log(n.astype(np.float32) / max_exact) / np.float32(np.log(max_distance / max_exact))
    large = max_exact + np.nan_to_num(scaled * (half - max_exact), neginf=0).astype(np.int64)
    large = np.minimum(large, half - 1)
    return (ret + np.where(n < max_exact, n, large)).astype(np.int32)


class Embeddings(nnx.Module):
    def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        init = nnx.initializers.normal(0.02)
        self.word = nnx.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=init, rngs=rngs, **dtypes(cfg))
        self.position = nnx.Embed(cfg.max_position_embeddings, cfg.hidden_size, embedding_init=init, rngs=rngs, **dtypes(cfg))
        self.token_type = (
            nnx.Embed(cfg.type_vocab_size, cfg.hidden_size, embedding_init=init, rngs=rngs, **dtypes(cfg))
            if cfg.type_vocab_size
            else None
        )
        self.norm = _layer_norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.hidden_dropout, rngs=rngs)

    def position_ids(self, mask: jax.Array) -> jax.Array:
        """``[B, L]`` position ids for an attention mask ``[B, L]``."""
        length = mask.shape[1]
        if self.cfg.family["positions"] == "absolute":
            return jnp.broadcast_to(jnp.arange(length), mask.shape)
        mask = mask.astype(jnp.int32)
        return jnp.cumsum(mask, axis=1) * mask + self.cfg.pad_token_id

    def __call__(self, word_embeds: jax.Array, mask: jax.Array, token_type_ids: jax.Array | None) -> jax.Array:
        x = word_embeds + self.position(self.position_ids(mask))
        if self.token_type is not None:
            if token_type_ids is None:
                token_type_ids = jnp.zeros(mask.shape, jnp.int32)
            x = x + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class SelfAttention(nnx.Module):
    def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        h = cfg.hidden_size
        self.query = _dense(cfg, h, h, rngs)
        self.key = _dense(cfg, h, h, rngs)
        self.value = _dense(cfg, h, h, rngs)
        self.output = _dense(cfg, h, h, rngs)
        self.dropout = nnx.Dropout(cfg.attention_dropout, rngs=rngs)

    def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
        """x ``[B, L, H]``; bias ``[B or 1, N or 1, L, L]`` added to the scores (mask + positions)."""
        b, length, _ = x.shape
        split = lambda t: t.reshape(b, length, self.cfg.num_heads, self.cfg.head_dim)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = jnp.einsum("bqnd,bknd->bnqk", q, k).astype(jnp.float32) / np.sqrt(self.cfg.head_dim).astype(np.float32)
        probs = self.dropout(jax.nn.softmax(scores + bias, axis=-1).astype(v.dtype))
        ctx = jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(b, length, -1)
        return self.output(ctx)


class Layer(nnx.Module):
    """Post-LayerNorm transformer layer: x = LN(x + attn(x)); x = LN(x + ffn(x))."""

    def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
        self.attention = SelfAttention(cfg, rngs)
        self.attention_norm = _layer_norm(cfg, rngs)
        self.intermediate = _dense(cfg, cfg.hidden_size, cfg.intermediate_size, rngs)
        self.output = _dense(cfg, cfg.intermediate_size, cfg.hidden_size, rngs)
        self.output_norm = _layer_norm(cfg, rngs)
        self.dropout = nnx.Dropout(cfg.hidden_dropout, rngs=rngs)
        self.act = _ACT[cfg.hidden_act]

    def __call__(self, x: jax.Array, bias: jax.Array) -> jax.Array:
        x = self.attention_norm(x + self.dropout(self.attention(x, bias)))
        ffn = self.output(self.act(self.intermediate(x)))
        return self.output_norm(x + self.dropout(ffn))


class Head(nnx.Module):
    """Classification head; ``pooled`` is the feature the final linear layer reads."""

    def __init__(self, cfg: EncoderConfig, rngs: nnx.Rngs):
        self.dense = _dense(cfg, cfg.hidden_size, cfg.hidden_size, rngs)  # BERT: the pooler
        self.out = _dense(cfg, cfg.hidden_size, cfg.num_labels, rngs)
        self.dropout = nnx.Dropout(cfg.classifier_dropout, rngs=rngs)
        self.pool_first = cfg.family["head"] == "pooler"

    def __call__(self, hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
        first = hidden[:, 0]
        if self.pool_first:  # BERT: pooler(CLS) -> dropout -> linear
            pooled = jnp.tanh(self.dense(first))
        else:  # RoBERTa/MPNet: dropout -> dense -> tanh -> dropout -> linear
            pooled = jnp.tanh(self.dense(self.dropout(first)))
        return self.out(self.dropout(pooled)), pooled


class SequenceClassifier(nnx.Module):
    """Encoder + classification head.

    Call with ``input_ids`` or, to differentiate with respect to them or replace them, with
    ``inputs_embeds`` (the word embeddings, ``embed_words(input_ids)``, before positions,
    token types and LayerNorm are added).
    """

    def __init__(self, cfg: EncoderConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        self.embeddings = Embeddings(cfg, rngs)
        self.layers = nnx.List([Layer(cfg, rngs) for _ in range(cfg.num_layers)])
        self.relative_bias = (
            nnx.Embed(cfg.family["relative_buckets"], cfg.num_heads, embedding_init=nnx.initializers.normal(0.02), rngs=rngs,
                      param_dtype=jnp.dtype(cfg.param_dtype))
            if cfg.family["relative_buckets"]
            else None
        )
        self.head = Head(cfg, rngs)

    def embed_words(self, input_ids: jax.Array) -> jax.Array:
        """``[B, L]`` ids -> ``[B, L, H]`` word embeddings."""
        return self.embeddings.word(input_ids)

    @property
    def word_embeddings(self) -> jax.Array:
        """The input embedding matrix ``[V, H]``."""
        return self.embeddings.word.embedding[...]

    def _attention_bias(self, mask: jax.Array) -> jax.Array:
        length = mask.shape[1]
        # Same additive mask as transformers: 0 where attended, the dtype's minimum where padded.
        bias = jnp.where(mask[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)
        if self.relative_bias is not None:
            buckets = relative_position_buckets(length, self.cfg.family["relative_buckets"])
            bias = bias + self.relative_bias(jnp.asarray(buckets)).transpose(2, 0, 1)[None]
        return bias

    def __call__(
        self,
        input_ids: jax.Array | None = None,
        attention_mask: jax.Array | None = None,
        token_type_ids: jax.Array | None = None,
        *,
        inputs_embeds: jax.Array | None = None,
        output_hidden_states: bool = False,
    ) -> ClassifierOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_words(input_ids)
        if attention_mask is None:
            attention_mask = jnp.ones(inputs_embeds.shape[:2], jnp.int32)
        x = self.embeddings(inputs_embeds, attention_mask, token_type_ids)
        bias = self._attention_bias(attention_mask)
        states = [x]
        for layer in self.layers:
            x = layer(x, bias)
            states.append(x)
        logits, pooled = self.head(x)
        return ClassifierOutput(logits.astype(jnp.float32), pooled, x, tuple(states) if output_hidden_states else None)
