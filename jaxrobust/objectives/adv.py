"""Discrete adversarial augmentation (A2T, Yoo & Qi 2021): train on clean texts plus word-substituted
adversarial versions of a share of each batch, found inside the jitted step.

For the first ``ceil(share · B)`` rows of a batch (batches are shuffled, so they are a random
share), one first-order step of the gradient attack (:mod:`jaxrobust.attacks.gradient` ranks its
substitutions the same way, then iterates and verifies; here nothing is verified) runs at the token
level on the training substitutions (:mod:`~jaxrobust.objectives.substitutions`):

1. one forward + backward pass of the model in eval mode on the clean tokens: the gradient ``g_t``
   of the cross-entropy of the true label with respect to each token's embedding ``e_t``;
2. the first-order gain of replacing token ``t`` by candidate ``c``: ``(e_c − e_t) · g_t``; each
   position keeps its best candidate;
3. the ``max(1, ceil(budget · n))`` positions with the largest positive gain are substituted (``n``
   the example's real tokens, special tokens excluded).

The loss is the cross-entropy averaged over the clean rows and the adversarial rows together.
The adversarial tokens are constants of the step (no gradient flows through the search).

Settings: ``config.adv`` (``share, budget``); candidates: ``config.synonyms``.
Shapes: ``B`` batch, ``L`` tokens, ``K`` candidates, ``H`` hidden size.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

from jaxrobust.objectives.ft import accuracy_of, eval_copy, weighted_mean


def substitution_gains(model, input_ids, attention_mask, token_type_ids, labels, slot_ids, slot_mask) -> jax.Array:
    """``[B, L, K]`` first-order gain in the true-class cross-entropy of each candidate of each
    position (``-inf`` where there is none), from one gradient pass of ``model`` in eval mode."""
    copy = eval_copy(model)
    embeds = copy.embed_words(input_ids)  # [B, L, H]

    def total_ce(e):
        logits = copy(None, attention_mask, token_type_ids, inputs_embeds=e).logits
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()

    grad = jax.grad(total_ce)(embeds)
    cand = copy.embed_words(slot_ids[..., 1:])  # [B, L, K, H]
    gain = jnp.einsum("blkh,blh->blk", cand - embeds[:, :, None, :], grad)
    return jnp.where(slot_mask[..., 1:], gain, -jnp.inf)


def substitute(input_ids, content, slot_ids, gains, budget: float) -> jax.Array:
    """``[B, L]`` token ids with the best-gain positions (at most ``budget`` of the ``content [B]``
    tokens, the non-special ones, at least one) replaced by their best candidate; only positive
    gains are taken."""
    best = gains.argmax(-1)  # [B, L]
    best_gain = gains.max(-1)
    n_real = jnp.maximum(content, 1)
    limit = jnp.maximum(1, jnp.ceil(budget * n_real)).astype(jnp.int32)  # [B]
    rank = jnp.argsort(jnp.argsort(-best_gain, axis=-1), axis=-1)  # 0 = the largest gain
    chosen = (rank < limit[:, None]) & (best_gain > 0)
    replacement = jnp.take_along_axis(slot_ids[..., 1:], best[..., None], axis=-1)[..., 0]
    return jnp.where(chosen, replacement, input_ids)


def adv_loss(model, batch, rng, config):
    """Cross-entropy over the clean batch and the adversarial versions of its first rows."""
    del rng
    c = config.adv
    B = batch["input_ids"].shape[0]
    n = min(B, max(1, math.ceil(c.share * B)))
    head = {k: v[:n] for k, v in batch.items()}
    gains = substitution_gains(
        model, head["input_ids"], head["attention_mask"], head["token_type_ids"], head["labels"],
        head["slot_ids"], head["slot_mask"],
    )
    adv_ids = jax.lax.stop_gradient(substitute(head["input_ids"], head["content"], head["slot_ids"], gains, c.budget))
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    adv_logits = model(adv_ids, head["attention_mask"], head["token_type_ids"]).logits
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
    adv_ce = optax.softmax_cross_entropy_with_integer_labels(adv_logits, head["labels"])
    w, adv_w = batch["weights"], head["weights"]
    loss = weighted_mean(jnp.concatenate([ce, adv_ce]), jnp.concatenate([w, adv_w]))
    changed = jnp.any(adv_ids != head["input_ids"], axis=-1).astype(jnp.float32)
    return loss, {
        "train_accuracy": accuracy_of(logits, batch["labels"], w),
        "adv_accuracy": accuracy_of(adv_logits, head["labels"], adv_w),
        "adv_changed": weighted_mean(changed, adv_w),
    }
