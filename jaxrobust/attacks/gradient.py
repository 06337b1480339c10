"""The project's gradient-guided word-substitution attack (HotFlip / A2T family), batched on device.

For every example of a batch at once:

1. one forward + backward pass on the clean text: the gradient ``g`` of the cross-entropy of the
   true label with respect to the word embeddings;
2. the first-order gain of replacing slot ``w`` by candidate ``c``: ``(ē_c − ē_w) · Σ_{t∈w} g_t``,
   where ``ē`` is the mean input embedding of a word's tokens and the sum runs over the word's
   tokens (the multi-token rule: a word is represented by the mean of its pieces, its gradient is
   the sum over its pieces); the ``depth`` best pairs make the example's ranking;
3. each iteration verifies the next ``verify`` pairs of the ranking whose word is still unchanged
   with real forward passes; the trial that flips the prediction (else: lowers the true-class
   probability most) is kept if it flips or lowers it at all;
4. stop when the prediction flips, ``max_changes(budget)`` words are changed, the ranking is used
   up, or after ``max_iters`` iterations.

One gradient per example: re-computing it after every accepted word (HotFlip) costs 2.2 forward
passes per iteration and, measured on rotten_tomatoes with budget 0.1, did not raise the success
rate; the verification passes already decide with exact probabilities.

:func:`gradient_attack` is the whole attack as one jitted program (a ``lax.while_loop`` over
padded, masked arrays ``[B, W, K]``: no Python loop over examples, slots or candidates, one
compilation per shape bucket ``(B, L, W, K)``). The budget is a traced scalar, so
:mod:`jaxrobust.attacks.sweep` vmaps the program over budgets (and over stacked parameters of
several runs). :func:`jaxrobust.attacks.engine.run_gradient_group` runs the same iterations from the
host with exact-length device batches and stops verifying an example at its first flip.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.attacks.layout import ORIGINAL, Layout, max_changes
from jaxrobust.attacks.sentence_encoder import embed_tokens
from jaxrobust.attacks.victim import Victim, build_batch, loss_grad, model_inputs, probs, word_embeddings


def _xp(*arrays):
    """NumPy for host arrays, jax.numpy for device or traced ones: the search's bookkeeping below
    runs on the host (:func:`~jaxrobust.attacks.engine.run_gradient_group`) without compiling a
    program per shape, and inside :func:`gradient_attack` unchanged."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _mean_embedding(table: jax.Array, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
    """Mean embedding of the first ``lengths`` of ``tokens [..., P]`` -> ``[..., H]``."""
    valid = jnp.arange(tokens.shape[-1]) < lengths[..., None]
    summed = jnp.einsum("...p,...ph->...h", valid.astype(table.dtype), table[tokens])
    return summed / jnp.maximum(lengths, 1)[..., None].astype(table.dtype)


def slot_gradients(token_slot, grad, W: int):
    """``[B, W, H]``: the gradient ``grad [B, L, H]`` summed over the tokens of each slot
    (``token_slot [B, L]``: the slot of each token, -1 for the others); NumPy for host arrays."""
    xp = _xp(token_slot, grad)
    onehot = (token_slot[..., None] == xp.arange(W)).astype(grad.dtype)  # [B, L, W]
    return xp.einsum("blw,blh->bwh", onehot, grad)


def gains_from_grad(table: jax.Array, lay: Layout, slot_grad: jax.Array) -> jax.Array:
    """The first-order gain ``[B, W, K]`` in the true-class loss of replacing each slot's word by
    each candidate, from the loss gradient summed over each slot's tokens ``slot_grad [B, W, H]``
    (:func:`slot_gradients`) and the input embedding matrix ``table [V, H]``."""
    cand_emb = _mean_embedding(table, lay.cand_tokens, lay.cand_len)  # [B, W, K, H]
    seg = jnp.minimum(lay.slot_seg, lay.seg_len.shape[1] - 1)
    orig_tok = jnp.take_along_axis(lay.seg_tokens, seg[..., None], axis=1)  # [B, W, P]
    orig_emb = _mean_embedding(table, orig_tok, jnp.take_along_axis(lay.seg_len, seg, axis=1))  # [B, W, H]
    return jnp.einsum("bwkh,bwh->bwk", cand_emb, slot_grad) - jnp.einsum("bwh,bwh->bw", orig_emb, slot_grad)[..., None]


def first_order_gains(victim: Victim, params, lay: Layout, length: int) -> tuple[jax.Array, jax.Array]:
    """Class probabilities ``[B, C]`` of the clean texts and the first-order gains ``[B, W, K]``
    (:func:`gains_from_grad`; one forward + backward pass)."""
    B, W, _ = lay.cand_len.shape
    tokens = build_batch(victim, lay, jnp.full((B, W), ORIGINAL, jnp.int32), length)
    p, grad = loss_grad(victim, params, model_inputs(tokens), lay.labels)  # [B, L, H]
    return p, gains_from_grad(word_embeddings(victim, params), lay, slot_gradients(tokens["token_slot"], grad, W))


def selection_key(trial_p, labels):
    """``[..., C]`` trial probabilities -> the key a trial is chosen by (lowest first): trials that
    flip the prediction come first, then the lower true-class probability."""
    true = _xp(trial_p, labels).take_along_axis(trial_p, labels[..., None], axis=-1)[..., 0]
    return true - 2.0 * (trial_p.argmax(-1) != labels)


def rank_pairs(victim: Victim, params, lay: Layout, length: int, depth: int):
    """One gradient pass on the clean texts: their probabilities ``[B, C]`` and :func:`top_pairs`."""
    p, gain = first_order_gains(victim, params, lay, length)
    return (p, *top_pairs(lay, gain, depth))


def top_pairs(lay: Layout, gain: jax.Array, depth: int) -> tuple[jax.Array, jax.Array]:
    """The ``depth`` best (slot, candidate) pairs by first-order gain ``[B, W, K]``: ``gains [B,
    depth]`` (``-inf`` past the last valid pair) and flat pair indices ``slot * K + candidate``."""
    B, W, K = lay.cand_len.shape
    valid = lay.cand_valid & lay.slot_valid[..., None]
    return jax.lax.top_k(jnp.where(valid, gain, -jnp.inf).reshape(B, W * K), depth)


def open_pairs(gains, pairs, tried, choice, K: int):
    """``[B, D]`` ranking entries still to verify: valid, not verified yet, word still unchanged."""
    xp = _xp(gains, pairs, tried, choice)
    unchanged = xp.take_along_axis(choice, pairs // K, axis=1) == ORIGINAL
    return xp.isfinite(gains) & ~tried & unchanged


def next_pairs(open_, m: int):
    """Positions ``[B, m]`` in the ranking of the next ``m`` open entries, and whether each is real."""
    xp = _xp(open_)
    pos = xp.argsort(~open_, axis=1, stable=True)[:, :m]
    return pos, xp.take_along_axis(open_, pos, axis=1)


def initial_state(p0: jax.Array, labels: jax.Array, W: int, depth: int) -> dict:
    """Attack state of rows whose clean class probabilities are ``p0 [B, C]`` (host arrays for
    host ones)."""
    B, xp = p0.shape[0], _xp(p0, labels)
    return dict(
        choice=xp.full((B, W), ORIGINAL, xp.int32),
        true_p=xp.take_along_axis(p0, labels[:, None], axis=1)[:, 0],
        done=p0.argmax(-1) != labels,  # misclassified already: skipped, never attacked
        tried=xp.zeros((B, depth), bool),
        changed=xp.zeros(B, xp.int32),
        queries=xp.zeros(B, xp.int32),  # verification passes (the clean text comes with the gradient)
    )


def active_rows(lay: Layout, ranking: tuple, state: dict, budget) -> tuple[jax.Array, jax.Array]:
    """``([B], [B, D])``: rows still attacking, and their open ranking entries."""
    _, gains, pairs = ranking
    open_ = open_pairs(gains, pairs, state["tried"], state["choice"], lay.cand_len.shape[2])
    active = ~state["done"] & (state["changed"] < max_changes(lay.n_words, budget)) & open_.any(1)
    return active, open_ & active[:, None]


def attack_step(victim: Victim, params, lay: Layout, budget, ranking: tuple, state: dict, *, length: int, verify: int,
                similarity: dict | None = None, encoder: Victim | None = None, encoder_length: int = 0) -> dict:
    """One iteration for every row: verify the next ``verify`` open pairs, keep the best trial.

    With ``similarity`` (A2T's constraint: ``params`` of the sentence ``encoder``, its ``layout`` of
    the same rows, the clean texts' unit embeddings ``reference [B, H]`` and the cosine
    ``threshold``), a trial whose whole text falls below the threshold is verified but cannot be
    kept, as :func:`~jaxrobust.attacks.engine.run_gradient_group` never queries it.
    """
    B, W, K = lay.cand_len.shape
    _, _, pairs = ranking
    m = min(verify, pairs.shape[1])
    rows = jnp.arange(B)
    active, open_ = active_rows(lay, ranking, state, budget)
    pos, real = next_pairs(open_, m)
    pair = jnp.take_along_axis(pairs, pos, axis=1)
    slot, cand = pair // K, pair % K
    trial = jnp.where(jnp.arange(W) == slot[..., None], cand[..., None], state["choice"][:, None, :])  # [B, m, W]
    flat = trial.reshape(B * m, W)
    trial_p = probs(victim, params, build_batch(victim, lay.rows(jnp.repeat(rows, m)), flat, length))
    trial_p = trial_p.reshape(B, m, -1)
    kept = real
    if similarity is not None:
        tokens = build_batch(encoder, similarity["layout"].rows(jnp.repeat(rows, m)), flat, encoder_length)
        emb = embed_tokens(encoder, similarity["params"], tokens).reshape(B, m, -1)
        kept = real & ((emb * similarity["reference"][:, None]).sum(-1) >= similarity["threshold"])
    key = jnp.where(kept, selection_key(trial_p, jnp.broadcast_to(lay.labels[:, None], (B, m))), jnp.inf)
    best = key.argmin(-1)
    accept = active & (key[rows, best] < state["true_p"])  # it flips, or lowers the true class
    best_p = trial_p[rows, best]
    return dict(
        choice=jnp.where(accept[:, None], trial[rows, best], state["choice"]),
        true_p=jnp.where(accept, best_p[rows, lay.labels], state["true_p"]),
        done=state["done"] | (accept & (best_p.argmax(-1) != lay.labels)),
        tried=state["tried"] | (jax.nn.one_hot(pos, pairs.shape[1], dtype=bool) & real[..., None]).any(1),
        changed=state["changed"] + accept,
        queries=state["queries"] + kept.sum(-1),
    )


@functools.partial(jax.jit, static_argnames=("victim", "length", "verify", "max_iters", "encoder", "encoder_length"))
def gradient_attack(victim: Victim, params, lay: Layout, budget: jax.Array, *, length: int, verify: int, max_iters: int,
                    similarity: dict | None = None, encoder: Victim | None = None, encoder_length: int = 0) -> dict:
    """The whole attack of every row of ``lay`` as one program (a ``lax.while_loop``); with
    ``similarity``, A2T's sentence-similarity constraint (:func:`attack_step`).

    Returns the final state (``choice [B, W]``, ``queries [B]`` verification passes, ``changed
    [B]``, ``done [B]``) plus ``orig_probs [B, C]``, ``skipped [B]`` and ``iters``.
    """
    W = lay.cand_len.shape[1]
    ranking = rank_pairs(victim, params, lay, length, ranking_depth(lay.cand_len.shape, verify, max_iters))
    p0 = ranking[0]
    step = functools.partial(attack_step, victim, params, lay, budget, ranking, length=length, verify=verify,
                             similarity=similarity, encoder=encoder, encoder_length=encoder_length)

    def cond(carry):
        it, state = carry
        return (it < max_iters) & active_rows(lay, ranking, state, budget)[0].any()

    state = initial_state(p0, lay.labels, W, ranking[1].shape[1])
    iters, final = jax.lax.while_loop(cond, lambda c: (c[0] + 1, step(c[1])), (jnp.int32(0), state))
    return dict(final, orig_probs=p0, skipped=p0.argmax(-1) != lay.labels, iters=iters)


def ranking_depth(shape: tuple, verify: int, max_iters: int) -> int:
    """Ranking entries an example can use: ``verify`` per iteration, at most all its pairs."""
    _, W, K = shape
    return min(W * K, verify * max_iters)
