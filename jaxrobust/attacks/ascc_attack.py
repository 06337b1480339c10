"""ASCC as an attack (Dong et al. 2021): relax, maximise, then take the argmax words.

The ASCC inner maximisation of :func:`jaxrobust.objectives.ascc.search` runs on the words of an
attack layout with the cross-entropy of the true label as its objective: every single-token slot's
embedding becomes a convex combination of the word and its single-token candidates, and Adam on the
weight logits (with the entropy penalty that pushes each combination towards one word) maximises
the loss. The relaxed solution is then made discrete:

* each slot's heaviest weight names its word; a slot whose heaviest weight is a candidate is a
  proposed substitution, ranked by that weight;
* the ``max_changes(budget)`` best proposals are applied;
* the discrete text is evaluated once, and like every attack's final text it is then re-tokenised
  and checked as a string (:mod:`jaxrobust.attacks.verify`).

Only slots whose word and candidates are one token each take part (the convex combination is one
embedding per token position); the other slots keep their word. One gradient pass per Adam step
and two forward passes (clean and final text) per example.

Shapes: ``B`` rows, ``L`` tokens, ``W`` slots, ``K`` candidates, ``S = 1 + K``.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.attacks.engine import Outcome, Scorer
from jaxrobust.attacks.layout import ORIGINAL, Layout, max_changes
from jaxrobust.attacks.victim import Victim, build_batch, logits, word_embeddings
from jaxrobust.objectives import ascc


def token_slots(lay: Layout, token_slot: jax.Array, input_ids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Slots of every token position: ``(ids [B, L, S], mask [B, L, S])``; slot 0 is the token,
    slots 1..K the candidates of a single-token word that are single tokens themselves."""
    B, W, K = lay.cand_len.shape
    seg = jnp.minimum(lay.slot_seg, lay.seg_len.shape[1] - 1)
    single_word = (jnp.take_along_axis(lay.seg_len, seg, axis=1) == 1) & lay.slot_valid  # [B, W]
    ok = (lay.cand_len == 1) & single_word[..., None]  # [B, W, K]
    slot = jnp.maximum(token_slot, 0)[..., None]  # [B, L, 1]
    cand_ids = jnp.take_along_axis(lay.cand_tokens[..., 0], slot, axis=1)  # [B, L, K]
    cand_ok = jnp.take_along_axis(ok, slot, axis=1) & (token_slot >= 0)[..., None]
    ids = jnp.concatenate([input_ids[..., None], cand_ids], axis=-1)
    mask = jnp.concatenate([jnp.ones_like(cand_ok[..., :1]), cand_ok], axis=-1)
    return ids, mask


def discrete_choice(weights: jax.Array, token_slot: jax.Array, W: int, limit: jax.Array) -> jax.Array:
    """``choice [B, W]`` from relaxed ``weights [B, L, S]``: the ``limit [B]`` slots with the
    heaviest candidate weight among those whose heaviest weight is a candidate."""
    slot_w = jnp.einsum("blw,bls->bws", jax.nn.one_hot(token_slot, W, dtype=weights.dtype), weights)  # [B, W, S]
    best = slot_w.argmax(-1)  # 0: the original word (also for slots without a token)
    score = jnp.where(best > 0, slot_w.max(-1), -jnp.inf)
    rank = jnp.argsort(jnp.argsort(-score, axis=-1), axis=-1)
    chosen = (rank < limit[:, None]) & jnp.isfinite(score)
    return jnp.where(chosen, best - 1, ORIGINAL).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("victim", "length", "steps"))
def relaxed_attack(victim: Victim, params, lay: Layout, budget, *, length: int, steps: int, lr, entropy_weight) -> jax.Array:
    """``choice [B, W]``: the discrete ASCC solution of every row of ``lay``."""
    W = lay.cand_len.shape[1]
    tokens = build_batch(victim, lay, jnp.full(lay.slot_seg.shape, ORIGINAL, jnp.int32), length)
    slot_ids, slot_mask = token_slots(lay, tokens["token_slot"], tokens["input_ids"])
    slot_embeds = word_embeddings(victim, params)[slot_ids]  # [B, L, S, H]
    cross_entropy = lambda lg: -jnp.take_along_axis(jax.nn.log_softmax(lg, -1), lay.labels[:, None], axis=1)[:, 0]
    weights = ascc.search(
        lambda e: logits(victim, params, tokens, inputs_embeds=e), slot_embeds, slot_mask, tokens["attention_mask"],
        cross_entropy, steps=steps, lr=lr, entropy_weight=entropy_weight,
    )
    return discrete_choice(weights, tokens["token_slot"], W, max_changes(lay.n_words, budget))


def ascc_group(
    scorer: Scorer, budget: float, *, steps: int, lr: float, entropy_weight: float,
    on_done: Callable[[int], None] = lambda n: None,
) -> list[Outcome]:
    """The ASCC attack on every member of ``scorer``'s group."""
    lay = scorer.group.layout
    N, W = lay.slot_seg.shape
    p0 = scorer.clean()
    skipped = p0.argmax(-1) != lay.labels
    choice = np.full((N, W), ORIGINAL, np.int32)
    attacked = np.flatnonzero(~skipped)
    for rows, sub, _, length in scorer.batches(attacked, choice[attacked]):
        found = relaxed_attack(scorer.victim, scorer.params, sub, budget, length=length, steps=steps, lr=lr, entropy_weight=entropy_weight)
        choice[attacked[rows]] = np.asarray(found)[: len(rows)]
        np.add.at(scorer.gradients, attacked[rows], steps)
        on_done(len(rows))
    on_done(int(skipped.sum()))
    changed = np.flatnonzero((choice != ORIGINAL).any(1))
    scorer(changed, choice[changed])  # the final texts: one forward pass each
    return [Outcome(choice[i], p0[i], int(scorer.queries[i]), int(scorer.gradients[i]), bool(skipped[i])) for i in range(N)]
