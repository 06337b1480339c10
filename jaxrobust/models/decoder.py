"""Decoder language models (GPT-2; Llama-style: Llama 2/3, SmolLM2, Mistral, Qwen2, Phi-3; Gemma 1/2/3;
Phi-1.5/2) as classifiers,
in Flax NNX, behind the interface of the encoders (:class:`~.encoder.SequenceClassifier`).

One pre-norm trunk: ``x = x + attn(norm(x)); x = x + mlp(norm(x))``, then a final norm. What the
families change is a field of :class:`~.decoder_config.DecoderConfig`:
* positions: learned (GPT-2, added to the word embeddings) or rotary (rotate-half form, on the
  queries and keys, or their leading share; Llama 3's rescaled frequencies);
* norms: LayerNorm with bias (GPT-2) or RMSNorm;
* attention: grouped KV heads, biases on the projections (GPT-2 all, Qwen2 q/k/v), a causal mask
  intersected with the padding mask and, per layer, a sliding window (Mistral, Qwen2);
* MLP: ``proj(act(fc(x)))`` (GPT-2, Phi) or ``down(act(gate(x)) * up(x))``; Phi-1.5/2 runs it
  beside attention on the same normalised input;
* Gemma: RMSNorm by ``1 + w``, embeddings scaled by ``sqrt(H)``; Gemma 2/3 a second norm on each
  branch's output, ``query_pre_attn_scalar``, soft-capped scores and LM logits (Gemma 2), QK norms
  and a rotary base per layer type (Gemma 3).

Heads, as transformers defines them: the causal-LM head (the word-embedding matrix when tied) and
the sequence-classification head ``score`` (a linear layer without bias) read at the last attended
token -- transformers finds it as the last token that is not the pad id; here it is found from the
attention mask, which is the same for right-padded batches and also holds when running from
embeddings. That token's final-norm hidden state is ``pooled``, the feature the head reads.

Shapes: B batch, L sequence length, H hidden size, N query heads, G KV heads, D head size, C labels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrobust.errors import JaxRobustError
from jaxrobust.models.decoder_config import DecoderConfig, llama3_inv_freq
from jaxrobust.models.encoder import ClassifierOutput, dtypes

def gelu_tanh(x: jax.Array) -> jax.Array:
    """The tanh approximation of GELU, ``0.5 x (1 + tanh(u))``, written as the equal ``x sigmoid(2u)``:
    XLA's float32 tanh on CPU is 4 ulp off and put jax.nn.gelu 7.9e-7 from a float64 GELU where
    torch's is 4.3e-7; this form is 5.1e-7 from it (normal inputs, sd 3)."""
    u = np.float32(2 * np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x**3)
    return x * jax.nn.sigmoid(u)


_ACT = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}
_INIT = nnx.initializers.normal(0.02)  # transformers' initializer_range default


def _linear(cfg: DecoderConfig, n_in: int, n_out: int, bias: bool, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, use_bias=bias, kernel_init=_INIT, rngs=rngs, **dtypes(cfg))


class RMSNorm(nnx.Module):
    """``x / sqrt(mean(x^2) + eps) * (offset + scale)``, computed in float32 (Gemma: offset 1, the
    weight stored as its difference from 1)."""

    def __init__(self, size: int, eps: float, offset: float = 0.0, param_dtype=jnp.float32):
        self.scale, self.eps, self.offset = nnx.Param(jnp.full(size, 1.0 - offset, param_dtype)), eps, offset

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x.astype(jnp.float32)
        y = y * jax.lax.rsqrt(jnp.mean(y * y, axis=-1, keepdims=True) + self.eps)
        return (y * (self.offset + self.scale[...].astype(jnp.float32))).astype(x.dtype)


def _norm(cfg: DecoderConfig, rngs: nnx.Rngs, size: int | None = None) -> nnx.Module:
    if cfg.norm == "rms":
        return RMSNorm(size or cfg.hidden_size, cfg.norm_eps, cfg.norm_offset, jnp.dtype(cfg.param_dtype))
    return nnx.LayerNorm(size or cfg.hidden_size, epsilon=cfg.norm_eps, rngs=rngs, **dtypes(cfg))


def _softcap(x: jax.Array, cap: float | None) -> jax.Array:
    return x if cap is None else jnp.tanh(x / cap) * cap


def rotary_tables(cfg: DecoderConfig, length: int, theta: float | None = None, factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``cos, sin [L, R]`` of positions ``0..L-1`` (float32, as transformers computes them); R is
    the rotated share of the head size (all of it unless partial). ``theta``, ``factor``: a layer's
    own base and linear scaling (Gemma 3), else the config's base."""
    d = cfg.rotary_dim or cfg.head_dim
    base = np.float32(cfg.rope_theta if theta is None else theta)
    inv_freq = (1.0 / (base ** (np.arange(0, d, 2).astype(np.float32) / np.float32(d)))).astype(np.float32)
    if factor != 1.0:
        inv_freq = (inv_freq / np.float32(factor)).astype(np.float32)
    if cfg.rope_llama3 is not None:
        inv_freq = llama3_inv_freq(inv_freq, *cfg.rope_llama3).astype(np.float32)
    angles = np.arange(length, dtype=np.float32)[:, None] * inv_freq[None, :]
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles), np.sin(angles)


def _rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate-half rotary embedding of the first R dimensions of ``x [B, L, heads, D]``."""
    r = cos.shape[-1]
    part, rest = x[..., :r], x[..., r:]
    rotated = jnp.concatenate([-part[..., r // 2 :], part[..., : r // 2]], axis=-1)
    return jnp.concatenate([part * cos[None, :, None, :] + rotated * sin[None, :, None, :], rest], axis=-1)


class Attention(nnx.Module):
    def __init__(self, cfg: DecoderConfig, window: int | None, rngs: nnx.Rngs):
        self.cfg, self.window = cfg, window
        h, n, g, d = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.query = _linear(cfg, h, n * d, cfg.qkv_bias, rngs)
        self.key = _linear(cfg, h, g * d, cfg.qkv_bias, rngs)
        self.value = _linear(cfg, h, g * d, cfg.qkv_bias, rngs)
        self.output = _linear(cfg, n * d, h, cfg.out_bias, rngs)
        self.q_norm = _norm(cfg, rngs, d) if cfg.qk_norm else None
        self.k_norm = _norm(cfg, rngs, d) if cfg.qk_norm else None
        self.dropout = nnx.Dropout(cfg.attention_dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array, rotary: tuple | None) -> jax.Array:
        """x ``[B, L, H]``; mask ``[B, L]`` (1: a real token)."""
        cfg = self.cfg
        b, length, _ = x.shape
        q = self.query(x).reshape(b, length, cfg.num_heads, cfg.head_dim)
        k = self.key(x).reshape(b, length, cfg.num_kv_heads, cfg.head_dim)
        v = self.value(x).reshape(b, length, cfg.num_kv_heads, cfg.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None:
            q, k = _rotate(q, *rotary), _rotate(k, *rotary)
        group = cfg.num_heads // cfg.num_kv_heads
        q = q.reshape(b, length, cfg.num_kv_heads, group, cfg.head_dim)
        scale = np.float32(cfg.head_dim**-0.5 if cfg.attn_scale is None else cfg.attn_scale)
        scores = _softcap(jnp.einsum("bqgmd,bkgd->bgmqk", q, k).astype(jnp.float32) * scale, cfg.attn_softcap)
        pos = np.arange(length)
        allowed = pos[None, :] <= pos[:, None]  # [q, k]: causal
        if self.window is not None:
            allowed &= pos[:, None] - pos[None, :] < self.window
        allowed = jnp.asarray(allowed)[None] & (mask[:, None, :] > 0)  # [B, q, k]
        scores = jnp.where(allowed[:, None, None], scores, jnp.finfo(scores.dtype).min)
        probs = self.dropout(jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype))
        ctx = jnp.einsum("bgmqk,bkgd->bqgmd", probs, v).reshape(b, length, cfg.num_heads * cfg.head_dim)
        return self.output(ctx)


class MLP(nnx.Module):
    def __init__(self, cfg: DecoderConfig, rngs: nnx.Rngs):
        h, i, bias = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.gated = cfg.mlp == "gated"
        self.gate = _linear(cfg, h, i, bias, rngs) if self.gated else None
        self.up = _linear(cfg, h, i, bias, rngs)  # GPT-2's c_fc
        self.down = _linear(cfg, i, h, bias, rngs)  # GPT-2's c_proj
        self.act = _ACT[cfg.act]

    def __call__(self, x: jax.Array) -> jax.Array:
        hidden = self.act(self.gate(x)) * self.up(x) if self.gated else self.act(self.up(x))
        return self.down(hidden)


class Block(nnx.Module):
    """Pre-norm decoder layer (sequential branches, or parallel ones)."""

    def __init__(self, cfg: DecoderConfig, window: int | None, rngs: nnx.Rngs):
        self.attention_norm = _norm(cfg, rngs)
        self.attention = Attention(cfg, window, rngs)
        self.mlp_norm = None if cfg.parallel else _norm(cfg, rngs)  # Phi: both branches read attention_norm
        self.mlp = MLP(cfg, rngs)
        # Gemma 2/3 also normalise each branch's output before adding it.
        self.attention_post_norm = _norm(cfg, rngs) if cfg.sandwich_norms else None
        self.mlp_post_norm = _norm(cfg, rngs) if cfg.sandwich_norms else None
        self.dropout = nnx.Dropout(cfg.residual_dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array, rotary: tuple | None) -> jax.Array:
        post = lambda norm, y: y if norm is None else norm(y)
        if self.mlp_norm is None:  # parallel branches
            h = self.attention_norm(x)
            return x + self.dropout(self.attention(h, mask, rotary)) + self.dropout(self.mlp(h))
        x = x + self.dropout(post(self.attention_post_norm, self.attention(self.attention_norm(x), mask, rotary)))
        return x + self.dropout(post(self.mlp_post_norm, self.mlp(self.mlp_norm(x))))


class DecoderClassifier(nnx.Module):
    """Decoder trunk + sequence-classification head (and the causal-LM head, :meth:`lm_logits`; an
untied one only ``with_lm_head``: a classifier has no use for its ``[H, V]`` matrix).

    Called as the encoders are: with ``input_ids`` or ``inputs_embeds`` (``embed_words(ids)``,
    before positions are added), the attention mask, and ``token_type_ids``, which decoders ignore.
    """

    def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs, with_lm_head: bool = True):
        self.cfg = cfg
        self.embed = nnx.Embed(cfg.vocab_size, cfg.hidden_size, embedding_init=_INIT, rngs=rngs, **dtypes(cfg))
        self.position = (nnx.Embed(cfg.max_position_embeddings, cfg.hidden_size, embedding_init=_INIT, rngs=rngs, **dtypes(cfg))
                         if cfg.positions == "learned" else None)
        self.embed_dropout = nnx.Dropout(cfg.embed_dropout, rngs=rngs)
        self.layers = nnx.List([Block(cfg, w, rngs) for w in cfg.layer_windows])
        self.final_norm = _norm(cfg, rngs)
        untied = with_lm_head and not cfg.tie_word_embeddings
        self.lm_head = None if not untied else _linear(cfg, cfg.hidden_size, cfg.vocab_size, cfg.lm_head_bias, rngs)
        self.head = _linear(cfg, cfg.hidden_size, cfg.num_labels, False, rngs)  # transformers' ``score``

    def embed_words(self, input_ids: jax.Array) -> jax.Array:
        """``[...]`` ids -> ``[..., H]`` word embeddings (Gemma's scaled, as its embedding layer
        returns them: what ``inputs_embeds`` takes)."""
        return self.word_embeddings[input_ids]

    @property
    def word_embeddings(self) -> jax.Array:
        """The input embedding matrix ``[V, H]``, scaled as :meth:`embed_words` returns its rows."""
        table = self.embed.embedding[...].astype(self.cfg.dtype)
        return table if self.cfg.embed_scale == 1.0 else table * jnp.asarray(self.cfg.embed_scale, table.dtype)

    def lm_logits(self, hidden: jax.Array) -> jax.Array:
        """``[B, L, V]`` next-token logits of final hidden states ``[B, L, H]``."""
        if self.cfg.tie_word_embeddings:
            logits = hidden @ self.embed.embedding[...].astype(hidden.dtype).T  # the unscaled table
        elif self.lm_head is None:
            raise JaxRobustError("this model has no causal-LM head (load it with lm_head=True, from a causal-LM checkpoint)")
        else:
            logits = self.lm_head(hidden)
        return _softcap(logits.astype(jnp.float32), self.cfg.final_softcap)

    def __call__(
        self,
        input_ids: jax.Array | None = None,
        attention_mask: jax.Array | None = None,
        token_type_ids: jax.Array | None = None,
        *,
        inputs_embeds: jax.Array | None = None,
        output_hidden_states: bool = False,
    ) -> ClassifierOutput:
        del token_type_ids  # decoders have no token types
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_words(input_ids) if inputs_embeds is None else inputs_embeds
        length = x.shape[1]
        if attention_mask is None:
            attention_mask = jnp.ones(x.shape[:2], jnp.int32)
        rotary = [None] * len(self.layers)
        if self.position is not None:
            x = x + self.position(jnp.arange(length))[None]
        else:
            tables = {key: tuple(map(jnp.asarray, rotary_tables(self.cfg, length, *key)))
                      for key in set(self.cfg.layer_rope) or {(None, 1.0)}}
            rotary = [tables[key] for key in self.cfg.layer_rope] if self.cfg.layer_rope else [tables[(None, 1.0)]] * len(self.layers)
        x = self.embed_dropout(x)
        states = [x]
        for layer, layer_rotary in zip(self.layers, rotary):
            x = layer(x, attention_mask, layer_rotary)
            states.append(x)
        x = self.final_norm(x)
        last = jnp.maximum(attention_mask.astype(jnp.int32).sum(-1) - 1, 0)  # right padding: the last real token
        pooled = x[jnp.arange(x.shape[0]), last]
        # hidden_states: the embedding output and every layer's output (before the final norm).
        return ClassifierOutput(self.head(pooled).astype(jnp.float32), pooled, x, tuple(states) if output_hidden_states else None)
