"""Standard fine-tuning: cross-entropy on clean inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Mean of ``values [B]`` over real examples (``weights [B]`` is 0 for padding)."""
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def accuracy_of(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
    """Accuracy of ``logits [B, C]`` on the real examples (``weights [B]`` > 0)."""
    return weighted_mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32), weights)


def eval_copy(model):
    """A copy of ``model`` in eval mode (no dropout) whose weights are constants: what an inner
    maximisation or a frozen teacher runs, inside a train step, whatever mode the model is in."""
    graphdef, state = nnx.split(model)
    copy = nnx.merge(graphdef, jax.lax.stop_gradient(state))
    copy.eval()
    return copy


def classifier_logits(model, batch) -> jax.Array:
    return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits


def ft_loss(model, batch, rng, config):
    del rng, config  # dropout draws from the model's own (per-step reseeded) stream
    logits = classifier_logits(model, batch)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
    return weighted_mean(ce, batch["weights"]), {"train_accuracy": accuracy_of(logits, batch["labels"], batch["weights"])}
