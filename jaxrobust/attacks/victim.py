"""The model under attack, as pure functions of its parameters.

Attacks take the model as ``(graphdef, params)`` (``nnx.split``): the compiled programs are keyed
by the architecture (``graphdef``) and the token shapes, and the weights are an argument, so runs
of one architecture (a sweep's, a study's) share every program. The forward program
(:func:`forward`) returns both what an attack reads of a victim (class probabilities) and what it
reads of a sentence encoder (the normalised mean of the last hidden states): a victim and an
encoder of one architecture (a MiniLM classifier checked by the MiniLM sentence encoder) share it.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from jaxrobust.attacks.layout import Layout, build_tokens


@dataclasses.dataclass(frozen=True, eq=False)
class Architecture:
    """A model's static half (``nnx.GraphDef``) as the key of its compiled programs."""

    graphdef: nnx.GraphDef

    def __hash__(self) -> int:
        # Every jitted call hashes its static arguments; hashing a graphdef walks the whole model
        # (about 6 ms for MiniLM-L6, thousands of calls per attack), so the hash is computed once.
        if "_hash" not in self.__dict__:
            object.__setattr__(self, "_hash", hash(self.graphdef))
        return self.__dict__["_hash"]

    def __eq__(self, other) -> bool:
        return self is other or (isinstance(other, Architecture) and hash(self) == hash(other) and self.graphdef == other.graphdef)


@dataclasses.dataclass(frozen=True, eq=False)
class Victim:
    """Static facts of the attacked model that shape the compiled attack."""

    graphdef: nnx.GraphDef
    pad_id: int
    unk_id: int
    max_length: int  # the length the model was trained with; longer sequences are truncated

    @functools.cached_property
    def architecture(self) -> Architecture:
        return Architecture(self.graphdef)

    def _key(self) -> tuple:
        return self.architecture, self.pad_id, self.unk_id, self.max_length

    def __hash__(self) -> int:
        return hash(self._key())  # cheap: the architecture's hash is cached

    def __eq__(self, other) -> bool:
        return self is other or (isinstance(other, Victim) and self._key() == other._key())


def split_model(model: nnx.Module, pad_id: int, unk_id: int, max_length: int) -> tuple[Victim, nnx.State]:
    """``(Victim, params)`` of ``model`` in eval mode (dropout off), the parameters committed to the
    first device: a program's cache key includes whether each argument is committed, so a restored
    run (committed) and a model read from safetensors (not) would otherwise not share programs."""
    model.eval()
    graphdef, params = nnx.split(model)
    return Victim(graphdef, pad_id, unk_id, max_length), jax.device_put(params, jax.devices()[0])


def build_batch(victim: Victim, lay: Layout, choice: jax.Array, length: int) -> dict:
    """Token arrays ``[B, length]`` of every row of ``lay`` with ``choice [B, W]`` applied."""
    build = lambda row, c: build_tokens(row, c, length, victim.max_length, victim.pad_id, victim.unk_id)
    return jax.vmap(build)(lay, choice)


def logits(victim: Victim, params, tokens: dict, inputs_embeds: jax.Array | None = None) -> jax.Array:
    """``[B, C]`` logits of the token arrays (or of word embeddings replacing the ids)."""
    model = nnx.merge(victim.graphdef, params)
    ids = None if inputs_embeds is not None else tokens["input_ids"]
    out = model(ids, tokens["attention_mask"], tokens["token_type_ids"], inputs_embeds=inputs_embeds)
    return out.logits


def model_inputs(tokens: dict) -> dict:
    """The arrays the model reads (``input_ids, attention_mask, token_type_ids``) of ``tokens``:
    one pytree for built and tokenised texts alike, so they share compiled programs."""
    return {k: tokens[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def outputs(arch: Architecture, params, tokens: dict) -> tuple[jax.Array, jax.Array]:
    """Class probabilities ``[B, C]`` and unit sentence embeddings ``[B, H]`` (the last hidden
    states averaged over the attended tokens, then divided by their L2 norm, as sentence-transformers'
    ``Pooling(mean) -> Normalize`` computes them) of token arrays ``[B, L]``."""
    model = nnx.merge(arch.graphdef, params)
    out = model(tokens["input_ids"], tokens["attention_mask"], tokens["token_type_ids"])
    return jax.nn.softmax(out.logits, axis=-1), unit_rows(mean_pool(out.last_hidden_state, tokens["attention_mask"]))


forward = jax.jit(outputs, static_argnames="arch")  # keyed by the architecture and the token shapes only


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """``[B, L, H]`` states, ``[B, L]`` mask -> ``[B, H]`` mean over the attended positions."""
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(1) / jnp.maximum(weights.sum(1), 1e-9)


def unit_rows(x: jax.Array) -> jax.Array:
    """Each row divided by its L2 norm (rows of norm below 1e-12 are divided by 1e-12, as torch does)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def predict(victim: Victim, params, tokens: dict) -> jax.Array:
    """``[B, C]`` class probabilities of token arrays ``[B, L]`` (:func:`forward`)."""
    return forward(victim.architecture, params, model_inputs(tokens))[0]


def loss_grad(victim: Victim, params, tokens: dict, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Class probabilities ``[B, C]`` and the gradient of each example's cross-entropy with respect
    to its word embeddings ``[B, L, H]`` (rows are independent, so one backward pass serves all)."""
    model = nnx.merge(victim.graphdef, params)
    embeds = model.embed_words(tokens["input_ids"])

    def total_loss(e):
        lg = logits(victim, params, tokens, inputs_embeds=e)
        logp = jax.nn.log_softmax(lg, axis=-1)
        return -jnp.take_along_axis(logp, labels[:, None], axis=1).sum(), lg

    grad, lg = jax.grad(total_loss, has_aux=True)(embeds)
    return jax.nn.softmax(lg, axis=-1), grad


predict_grad = jax.jit(loss_grad, static_argnames="victim")  # keyed by the victim and the token shapes only


def word_embeddings(victim: Victim, params) -> jax.Array:
    return nnx.merge(victim.graphdef, params).word_embeddings
