"""The model under attack, as pure functions of its parameters.

Attacks take the model as ``(graphdef, params)`` (``nnx.split``): the compiled programs are keyed
by the architecture (``graphdef``) and the token shapes, and the weights are an argument, so runs
of one architecture (a sweep's, a study's) share every program.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxrobust.attacks.layout import Layout, build_tokens


@dataclasses.dataclass(frozen=True)
class Victim:
    """Static facts of the attacked model that shape the compiled attack."""

    graphdef: nnx.GraphDef
    pad_id: int
    unk_id: int
    max_length: int  # the length the model was trained with; longer sequences are truncated

    def __hash__(self) -> int:
        # Every jitted call hashes its static arguments; hashing a graphdef walks the whole model
        # (about 6 ms for MiniLM-L6, thousands of calls per attack), so the hash is computed once.
        if "_hash" not in self.__dict__:
            object.__setattr__(self, "_hash", hash((self.graphdef, self.pad_id, self.unk_id, self.max_length)))
        return self.__dict__["_hash"]

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if not isinstance(other, Victim) or hash(self) != hash(other):
            return False
        return (self.graphdef, self.pad_id, self.unk_id, self.max_length) == (other.graphdef, other.pad_id, other.unk_id, other.max_length)


def split_model(model: nnx.Module, pad_id: int, unk_id: int, max_length: int) -> tuple[Victim, nnx.State]:
    """``(Victim, params)`` of ``model`` in eval mode (dropout off)."""
    model.eval()
    graphdef, params = nnx.split(model)
    return Victim(graphdef, pad_id, unk_id, max_length), params


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


def probs(victim: Victim, params, tokens: dict) -> jax.Array:
    return jax.nn.softmax(logits(victim, params, tokens), axis=-1)


predict = jax.jit(probs, static_argnames="victim")  # keyed by the victim and the token shapes only


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
