"""Standard fine-tuning: cross-entropy on clean inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Mean of ``values [B]`` over real examples (``weights [B]`` is 0 for padding)."""
    return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def classifier_logits(model, batch) -> jax.Array:
    return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits


def ft_loss(model, batch, rng, config):
    del rng, config  # dropout draws from the model's own (per-step reseeded) stream
    logits = classifier_logits(model, batch)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
    accuracy = (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)
    return weighted_mean(ce, batch["weights"]), {"train_accuracy": weighted_mean(accuracy, batch["weights"])}
