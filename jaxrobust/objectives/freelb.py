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


def freelb_loss(model, batch, rng, config):
    c = config.freelb
    embeds = model.embed_words(batch["input_ids"])  # [B, L, H]
    mask, labels, weights = batch["attention_mask"], batch["labels"], batch["weights"]

    def adversarial_loss(model, delta):
        out = model(None, mask, batch["token_type_ids"], inputs_embeds=embeds + delta)
        ce = optax.softmax_cross_entropy_with_integer_labels(out.logits, labels)
        return weighted_mean(ce, weights), out.logits

    delta = initial_delta(rng, mask, embeds.shape[-1], c.init_mag)
    total, first_logits = 0.0, None
    for k in range(c.steps):  # K is small and static: unrolled
        delta = jax.lax.stop_gradient(delta)
        loss, logits = adversarial_loss(model, delta)
        total = total + loss / c.steps
        first_logits = logits if first_logits is None else first_logits
        if k + 1 < c.steps:
            # The δ-gradient runs on a copy of the model in eval mode (no dropout, so no RNG state
            # to update inside jax.grad) with constant weights.
            copy = eval_copy(model)
            grad = jax.grad(lambda d: adversarial_loss(copy, d)[0])(delta)
            delta = ascent_step(delta, jax.lax.stop_gradient(grad), mask, c.adv_lr, c.max_norm)
    return total, {"train_accuracy": accuracy_of(first_logits, labels, weights)}
