"""The project's gradient-guided word-substitution attack (HotFlip / A2T family), batched on device.

One iteration, for every example of the batch at once:

1. one forward + backward pass: the gradient ``g`` of the cross-entropy of the true label with
   respect to the word embeddings of the current text;
2. the first-order gain of replacing slot ``w`` by candidate ``c``: ``(ē_c − ē_w) · Σ_{t∈w} g_t``,
   where ``ē`` is the mean input embedding of a word's tokens and the sum runs over the tokens the
   slot holds now (the multi-token rule: a word is represented by the mean of its pieces, its
   gradient is the sum over its pieces);
3. the ``verify`` best (slot, candidate) pairs among those still allowed are evaluated with real
   forward passes; the one that lowers the true-class probability most is kept if it lowers it at
   all. Pairs verified once are not verified again (so a step that finds nothing moves on to the
   next-best pairs);
4. stop when the prediction flips, ``max_changes(budget)`` words are changed, no pair is left, or
   after ``max_iters`` iterations.

Everything is one ``lax.while_loop`` inside one jitted function of padded, masked arrays
``[B, W, K]``: no Python loop over examples, slots or candidates, and one compilation per shape
bucket ``(B, L, W, K)``. The budget is a traced scalar, so :mod:`jaxrobust.attacks.sweep` vmaps the
same program over budgets (and over stacked parameters of several runs).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxrobust.attacks.layout import ORIGINAL, Layout, max_changes
from jaxrobust.attacks.victim import Victim, build_batch, loss_grad, probs, word_embeddings


def _mean_embedding(table: jax.Array, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
    """Mean embedding of the first ``lengths`` of ``tokens [..., P]`` -> ``[..., H]``."""
    valid = jnp.arange(tokens.shape[-1]) < lengths[..., None]
    summed = jnp.einsum("...p,...ph->...h", valid.astype(table.dtype), table[tokens])
    return summed / jnp.maximum(lengths, 1)[..., None].astype(table.dtype)


def initial_state(lay: Layout, p0: jax.Array) -> dict:
    """Attack state of fresh rows whose clean class probabilities are ``p0 [B, C]``."""
    B, W, K = lay.cand_len.shape
    return dict(
        choice=jnp.full((B, W), ORIGINAL, jnp.int32),
        probs=p0,
        true_p=jnp.take_along_axis(p0, lay.labels[:, None], axis=1)[:, 0],
        done=p0.argmax(-1) != lay.labels,  # misclassified already: skipped, never attacked
        tried=jnp.zeros((B, W, K), bool),
        changed=jnp.zeros(B, jnp.int32),
        queries=jnp.ones(B, jnp.int32),  # the clean forward pass
        gradients=jnp.zeros(B, jnp.int32),
    )


def allowed_pairs(lay: Layout, state: dict, budget: jax.Array) -> jax.Array:
    """``[B, W, K]``: (slot, candidate) pairs the attack may still try."""
    active = ~state["done"] & (state["changed"] < max_changes(lay.n_words, budget))
    free = (state["choice"] == ORIGINAL)[..., None]  # a word changes at most once
    return lay.cand_valid & lay.slot_valid[..., None] & free & ~state["tried"] & active[:, None, None]


def attack_step(victim: Victim, params, lay: Layout, budget: jax.Array, state: dict, *, length: int, verify: int) -> dict:
    """One iteration (gradient, first-order gains, ``verify`` forward checks) for every row."""
    B, W, K = lay.cand_len.shape
    m = min(verify, W * K)
    rows = jnp.arange(B)
    table = word_embeddings(victim, params)
    cand_emb = _mean_embedding(table, lay.cand_tokens, lay.cand_len)  # [B, W, K, H]
    seg = jnp.minimum(lay.slot_seg, lay.seg_len.shape[1] - 1)
    orig_tok = jnp.take_along_axis(lay.seg_tokens, seg[..., None], axis=1)  # [B, W, P]
    orig_emb = _mean_embedding(table, orig_tok, jnp.take_along_axis(lay.seg_len, seg, axis=1))  # [B, W, H]

    ok = allowed_pairs(lay, state, budget)
    active = ok.any(axis=(1, 2))
    tokens = build_batch(victim, lay, state["choice"], length)
    _, grad = loss_grad(victim, params, tokens, lay.labels)  # [B, L, H]
    slot_onehot = jax.nn.one_hot(tokens["token_slot"], W, dtype=grad.dtype)  # [B, L, W]; -1 -> zeros
    slot_grad = jnp.einsum("blw,blh->bwh", slot_onehot, grad)
    pick = jnp.clip(state["choice"], 0, K - 1)
    chosen_emb = jnp.take_along_axis(cand_emb, pick[..., None, None], axis=2)[:, :, 0]
    cur_emb = jnp.where((state["choice"] >= 0)[..., None], chosen_emb, orig_emb)
    gain = jnp.einsum("bwkh,bwh->bwk", cand_emb, slot_grad) - jnp.einsum("bwh,bwh->bw", cur_emb, slot_grad)[..., None]
    gain = jnp.where(ok, gain, -jnp.inf).reshape(B, W * K)
    top_gain, top = jax.lax.top_k(gain, m)  # [B, m]
    real = jnp.isfinite(top_gain)
    slot, cand = top // K, top % K
    trial = jnp.where(jnp.arange(W) == slot[..., None], cand[..., None], state["choice"][:, None, :])  # [B, m, W]
    trial_lay = lay.rows(jnp.repeat(rows, m))
    trial_p = probs(victim, params, build_batch(victim, trial_lay, trial.reshape(B * m, W), length)).reshape(B, m, -1)
    trial_true = jnp.where(real, jnp.take_along_axis(trial_p, lay.labels[:, None, None], axis=2)[..., 0], jnp.inf)
    best = trial_true.argmin(-1)
    accept = active & (trial_true[rows, best] < state["true_p"])
    new_probs = jnp.where(accept[:, None], trial_p[rows, best], state["probs"])
    tried = state["tried"] | (jax.nn.one_hot(top, W * K, dtype=bool) & real[..., None]).any(1).reshape(B, W, K)
    return dict(
        choice=jnp.where(accept[:, None], trial[rows, best], state["choice"]),
        probs=new_probs,
        true_p=jnp.where(accept, trial_true[rows, best], state["true_p"]),
        done=state["done"] | (accept & (new_probs.argmax(-1) != lay.labels)),
        tried=tried,
        changed=state["changed"] + accept,
        queries=state["queries"] + jnp.where(active, real.sum(-1), 0),
        gradients=state["gradients"] + active,
    )


def finished(lay: Layout, state: dict, budget: jax.Array) -> jax.Array:
    """``[B]``: rows with nothing left to try (flipped, budget spent, or out of pairs)."""
    return ~allowed_pairs(lay, state, budget).any(axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("victim", "length", "verify", "max_iters"))
def gradient_attack(victim: Victim, params, lay: Layout, budget: jax.Array, *, length: int, verify: int, max_iters: int) -> dict:
    """The whole attack of every row of ``lay`` as one program (a ``lax.while_loop``).

    Returns the final state (``choice [B, W]``, ``probs [B, C]`` on device tokens, ``queries [B]``
    forward passes on texts incl. the clean one, ``gradients [B]`` forward+backward passes,
    ``changed [B]``, ``done [B]``) plus ``orig_probs [B, C]``, ``skipped [B]`` and ``iters``.
    """
    B, W, _ = lay.cand_len.shape
    p0 = probs(victim, params, build_batch(victim, lay, jnp.full((B, W), ORIGINAL, jnp.int32), length))
    step = functools.partial(attack_step, victim, params, lay, budget, length=length, verify=verify)

    def cond(carry):
        it, state = carry
        return (it < max_iters) & ~finished(lay, state, budget).all()

    iters, final = jax.lax.while_loop(cond, lambda c: (c[0] + 1, step(c[1])), (jnp.int32(0), initial_state(lay, p0)))
    return dict(final, orig_probs=p0, skipped=p0.argmax(-1) != lay.labels, iters=iters)
