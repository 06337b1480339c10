"""FreeLB (Zhu et al. 2020): K steps of projected gradient ascent on the word embeddings, the
parameter gradients of all K adversarial losses accumulated.

For each batch, with ``e`` the word embeddings ``[B, L, H]`` and ``m`` the attention mask:

* ``δ₀ = U(-1, 1) · m · init_mag / sqrt(n · H)`` (``n`` the example's real length; 0 if init_mag is 0);
* for ``k = 0 .. K-1``: ``L_k = CE(f(e + δ_k), y)``; the step's loss is ``(1/K) Σ_k L_k``, each
  ``δ_k`` a constant for the parameter gradient (as in the reference, where the parameter
  gradients of the K backward passes are summed); then ``δ_{k+1} = δ_k + adv_lr · g / ‖g‖`` with
  ``g = ∂L_k/∂δ_k`` and the norm per example, projected back into ``‖δ‖ ≤ max_norm`` when
  ``max_norm > 0``.

Settings come from ``config.freelb`` (``steps, adv_lr, init_mag, max_norm``). Needs a model that
takes word embeddings as input (the encoder family).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxrobust.objectives.ft import accuracy_of, eval_copy, weighted_mean


def _per_example_norm(x: jax.Array) -> jax.Array:
    """``[B, L, H]`` -> ``[B, 1, 1]`` L2 norms (never 0)."""
    return jnp.maximum(jnp.sqrt(jnp.sum(x * x, axis=(1, 2), keepdims=True)), 1e-12)


def initial_delta(rng: jax.Array, mask: jax.Array, hidden: int, init_mag: float) -> jax.Array:
    """``δ₀ [B, L, H]``: uniform noise on real tokens scaled to ``init_mag / sqrt(length · H)``."""
    B, L = mask.shape
    m = mask.astype(jnp.float32)[..., None]
    lengths = jnp.maximum(m.sum(axis=(1, 2), keepdims=True), 1.0)
    noise = jax.random.uniform(rng, (B, L, hidden), minval=-1.0, maxval=1.0) * m
    return noise * init_mag / jnp.sqrt(lengths * hidden)


def ascent_step(delta: jax.Array, grad: jax.Array, mask: jax.Array, adv_lr: float, max_norm: float) -> jax.Array:
    """One normalised gradient-ascent step on ``δ``, projected onto the ``max_norm`` ball."""
    grad = grad * mask.astype(grad.dtype)[..., None]
    delta = delta + adv_lr * grad / _per_example_norm(grad)
    if max_norm > 0:
        delta = delta * jnp.minimum(1.0, max_norm / _per_example_norm(delta))
    return delta


def ascent_path(model, batch, rng, settings, embeds: jax.Array, *, last_grad: bool = False) -> tuple[list, list]:
    """FreeLB's perturbations ``[δ_0, ..., δ_{K-1}]`` (each ``[B, L, H]``, constant) and the
    ``δ``-gradients of the cross-entropy at each but the last (at every one with ``last_grad``).

    The ``δ``-gradients run on a copy of the model in eval mode (no dropout, so no RNG state to
    update inside ``jax.grad``) with constant weights, so the path does not depend on the training
    forward passes made at each ``δ_k`` afterwards."""
    mask, types, labels, weights = batch["attention_mask"], batch["token_type_ids"], batch["labels"], batch["weights"]
    copy = eval_copy(model)

    def ce_at(delta):
        logits = copy(None, mask, types, inputs_embeds=jax.lax.stop_gradient(embeds) + delta).logits
        return weighted_mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), weights)

    deltas, grads = [initial_delta(rng, mask, embeds.shape[-1], settings.init_mag)], []
    for k in range(settings.steps):  # K is small and static: unrolled
        if k + 1 < settings.steps or last_grad:
            grads.append(jax.lax.stop_gradient(jax.grad(ce_at)(deltas[-1])))
        if k + 1 < settings.steps:
            deltas.append(ascent_step(deltas[-1], grads[-1], mask, settings.adv_lr, settings.max_norm))
    return deltas, grads


def freelb_loss(model, batch, rng, config):
    embeds = model.embed_words(batch["input_ids"])  # [B, L, H]
    mask, labels, weights = batch["attention_mask"], batch["labels"], batch["weights"]
    deltas, _ = ascent_path(model, batch, rng, config.freelb, embeds)
    total, first_logits = 0.0, None
    for delta in deltas:
        logits = model(None, mask, batch["token_type_ids"], inputs_embeds=embeds + delta).logits
        total = total + weighted_mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), weights) / len(deltas)
        first_logits = logits if first_logits is None else first_logits
    return total, {"train_accuracy": accuracy_of(first_logits, labels, weights)}
