"""ASCC (Dong et al. 2021): adversarial sparse convex combinations of a word and its synonyms.

Every token's input embedding becomes a convex combination of its slots' embeddings (the token and
its candidate tokens, :mod:`~jaxrobust.objectives.substitutions`): ``x̃ = Σ_s w_s e_s`` with
``w = softmax(ŵ)`` over the real slots. The inner maximisation runs ``steps`` Adam steps (learning
rate ``lr``) on the logits ``ŵ`` from 0 (uniform weights), with the model in eval mode, maximising

    KL(p(x) ‖ p(x̃)) − entropy_weight · H(w)

(``H`` the mean entropy of the real positions' weights: the penalty pushes each ``w`` to a vertex,
a real word). Both predictions are eval-mode ones, so the search chases the adversary, not dropout
noise. It is a ``lax.fori_loop`` inside the jitted train step.

* ``ascc`` objective: ``CE(f(x), y) + beta · KL(p(x) ‖ p(x̃))`` with the final weights held fixed
  (the slot embeddings still carry gradient to the embedding table).
* ASCC's test-time attack (:mod:`jaxrobust.attacks.ascc_attack`) reuses :func:`search` with the
  cross-entropy as ``objective``.

Shapes: ``B`` batch, ``L`` tokens, ``S`` slots, ``H`` hidden size, ``C`` classes.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxrobust.objectives.ft import accuracy_of, eval_copy, weighted_mean

_MASKED = -1e9


def slot_weights(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """``[B, L, S]`` softmax of ``logits`` over the real slots (``mask``); padding slots get 0."""
    return jax.nn.softmax(jnp.where(mask, logits, _MASKED), axis=-1) * mask


def mix(slot_embeds: jax.Array, weights: jax.Array) -> jax.Array:
    """``[B, L, S, H]``, ``[B, L, S]`` -> ``[B, L, H]`` convex combinations."""
    return jnp.einsum("blsh,bls->blh", slot_embeds, weights)


def entropy(weights: jax.Array, mask: jax.Array, token_mask: jax.Array) -> jax.Array:
    """``[B]`` mean entropy of the weights of each example's real positions."""
    h = -jnp.sum(jnp.where(mask, weights * jnp.log(jnp.maximum(weights, 1e-12)), 0.0), axis=-1)  # [B, L]
    t = token_mask.astype(h.dtype)
    return jnp.sum(h * t, axis=-1) / jnp.maximum(t.sum(-1), 1.0)


def kl_divergence(clean_logits: jax.Array, adv_logits: jax.Array) -> jax.Array:
    """``[B]`` KL(p(x) ‖ p(x̃)) from the two ``[B, C]`` logits."""
    clean_logp = jax.nn.log_softmax(clean_logits, axis=-1)
    return jnp.sum(jnp.exp(clean_logp) * (clean_logp - jax.nn.log_softmax(adv_logits, axis=-1)), axis=-1)


def eval_logits_fn(model, batch) -> Callable[[jax.Array], jax.Array]:
    """``word_embeds [B, L, H] -> logits [B, C]`` of ``model`` in eval mode with constant weights."""
    copy = eval_copy(model)
    return lambda embeds: copy(None, batch["attention_mask"], batch["token_type_ids"], inputs_embeds=embeds).logits


def search(
    logits_fn: Callable[[jax.Array], jax.Array],
    slot_embeds: jax.Array,
    slot_mask: jax.Array,
    token_mask: jax.Array,
    objective: Callable[[jax.Array], jax.Array],
    *,
    steps: int,
    lr: float,
    entropy_weight: float,
) -> jax.Array:
    """The ASCC inner maximisation: weights ``[B, L, S]`` after ``steps`` Adam steps on
    ``Σ_b objective(logits_fn(x̃))_b − entropy_weight · H(w)_b`` (``objective``: ``[B, C]`` logits
    -> ``[B]`` values to maximise)."""
    slot_embeds = jax.lax.stop_gradient(slot_embeds)
    opt = optax.adam(lr)

    def loss(w_logits):
        w = slot_weights(w_logits, slot_mask)
        value = objective(logits_fn(mix(slot_embeds, w))) - entropy_weight * entropy(w, slot_mask, token_mask)
        return -jnp.sum(value)

    def step(_, carry):
        w_logits, opt_state = carry
        updates, opt_state = opt.update(jax.grad(loss)(w_logits), opt_state)
        return optax.apply_updates(w_logits, updates), opt_state

    w_logits = jnp.zeros(slot_mask.shape, slot_embeds.dtype)
    w_logits, _ = jax.lax.fori_loop(0, steps, step, (w_logits, opt.init(w_logits)))
    return jax.lax.stop_gradient(slot_weights(w_logits, slot_mask))


def adversarial_embeddings(model, batch, settings) -> jax.Array:
    """``[B, L, H]`` ASCC adversarial word embeddings of ``batch`` (needs ``slot_ids, slot_mask``)
    maximising the KL to the eval-mode prediction on ``batch``; differentiable in the embedding
    table, not in the weights."""
    slot_embeds = model.embed_words(batch["slot_ids"])  # [B, L, S, H]
    logits_fn = eval_logits_fn(model, batch)
    clean = jax.lax.stop_gradient(logits_fn(model.embed_words(batch["input_ids"])))
    weights = search(
        logits_fn, slot_embeds, batch["slot_mask"], batch["attention_mask"],
        lambda adv: kl_divergence(clean, adv),
        steps=settings.steps, lr=settings.lr, entropy_weight=settings.entropy_weight,
    )
    return mix(slot_embeds, weights)


def ascc_loss(model, batch, rng, config):
    """``CE(f(x), y) + beta · KL(p(x) ‖ p(x̃))`` (``config.ascc``)."""
    del rng
    out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    adv_embeds = adversarial_embeddings(model, batch, config.ascc)
    adv = model(None, batch["attention_mask"], batch["token_type_ids"], inputs_embeds=adv_embeds)
    ce = optax.softmax_cross_entropy_with_integer_labels(out.logits, batch["labels"])
    kl = kl_divergence(out.logits, adv.logits)
    w = batch["weights"]
    return weighted_mean(ce, w) + config.ascc.beta * weighted_mean(kl, w), {
        "train_accuracy": accuracy_of(out.logits, batch["labels"], w),
        "ce": weighted_mean(ce, w),
        "kl": weighted_mean(kl, w),
    }
