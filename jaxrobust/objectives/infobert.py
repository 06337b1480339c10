"""InfoBERT (Wang et al., ICLR 2021): FreeLB's adversarial training with two information-theoretic
regularisers (``../shared/METHODS.md`` §4; the authors' ``AI-secure/InfoBERT``, version 6 of their
estimators, both regularisers on).

At each of FreeLB's ``K`` perturbations ``δ_k`` (:func:`~jaxrobust.objectives.freelb.ascent_path`)
the model runs on ``e + δ_k`` and the step's loss is the mean over ``k`` of

    CE(f(e + δ_k), y) + beta · IB_k − alpha · NCE_k

* ``IB_k``, the information bottleneck on the local features (an upper bound of ``I(X_i; T_i)``,
  the authors' ``CLUBv2``): ``T_i`` is the embedding layer's output at each real token of the batch
  (``hidden_states[0]``), and ``IB = mean_i ||T_i − T_π(i)||² / 2`` with ``π(i)`` a real token of the
  batch drawn at random (with replacement) for each ``i``. Minimising it keeps the local features
  from carrying more of the input than the task needs.
* ``NCE_k``, the anchored-feature InfoNCE (a lower bound of ``I(T_j; Z)``, maximised): the anchored
  words of an example are its real tokens whose ``δ``-gradient norm ranks between the quantiles ``cl``
  and ``ch`` of that example (:func:`anchored_tokens`: useful but not the most fragile); each pairs its
  local feature ``T_j`` with its sentence feature ``Z`` (the feature the classification head reads),
  and a critic ``F`` (MLP ``2H -> hidden -> ReLU -> 1 -> softplus``, trained with the model) scores
  pairs: ``NCE = mean_j F(T_j, Z_j) − mean_j logsumexp_{j'} F(T_j', Z_j) + log |A|`` over the set
  ``A`` of the batch's anchored words (:func:`anchored_info_nce`).

Two deliberate differences from the reference code, both to keep shapes static on device: the
InfoNCE's negatives are all anchored words of the batch, not shuffled chunks of ``batch_size``
pairs; and, as in :mod:`~jaxrobust.objectives.freelb`, the ``δ``-gradients (and so the anchored
words) come from the cross-entropy of the model in eval mode. Settings: ``config.infobert``
(FreeLB's ``steps, adv_lr, init_mag, max_norm`` and ``beta, alpha, cl, ch, critic_hidden``).

Shapes: ``B`` batch, ``L`` tokens, ``H`` hidden size, ``D`` the critic's hidden width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxrobust.objectives.freelb import ascent_path
from jaxrobust.objectives.ft import accuracy_of, weighted_mean

_MASKED = -1e9


class Critic(nnx.Module):
    """``F(t, z) = softplus(w2 · relu(W1 [t; z] + b1) + b2)``: the InfoNCE's score of a local feature
    ``t`` and a sentence feature ``z``, both of width ``H``."""

    def __init__(self, features: int, hidden: int, *, rngs: nnx.Rngs):
        self.local = nnx.Linear(features, hidden, rngs=rngs)  # W1's half that reads t (with b1)
        self.sentence = nnx.Linear(features, hidden, use_bias=False, rngs=rngs)  # W1's half that reads z
        self.out = nnx.Linear(hidden, 1, rngs=rngs)

    def scores(self, local: jax.Array, sentence: jax.Array) -> jax.Array:
        """``local [B, L, H]``, ``sentence [B, H]`` -> ``[B, B, L]``: ``F(local[b', l], sentence[b])`` at
        ``[b, b', l]``, every local feature of the batch against every sentence. ``W1 [t; z]`` splits
        into ``W1_t t + W1_z z``, so the pairs cost one add each, not one matmul each."""
        h = jax.nn.relu(self.sentence(sentence)[:, None, None, :] + self.local(local)[None])  # [B, B, L, D]
        return jax.nn.softplus(self.out(h)[..., 0])


class InfoBertModel(nnx.Module):
    """What InfoBERT trains: the classifier and the InfoNCE critic."""

    def __init__(self, classifier: nnx.Module, settings, *, seed: int):
        self.classifier = classifier
        self.critic = Critic(classifier.cfg.hidden_size, settings.critic_hidden, rngs=nnx.Rngs(params=seed))


def anchored_tokens(grad: jax.Array, mask: jax.Array, cl: float, ch: float) -> jax.Array:
    """``[B, L]`` bool: each example's real tokens whose ``grad [B, L, H]`` norm is at ranks
    ``ceil(n·cl) .. ceil(n·ch) − 1`` in ascending order (``n`` its real tokens, ``mask [B, L]``)."""
    norm = jnp.where(mask > 0, jnp.linalg.norm(grad, axis=-1), jnp.inf)  # padding sorts last
    rank = jnp.argsort(jnp.argsort(norm, axis=-1, stable=True), axis=-1, stable=True)
    n = mask.sum(-1, keepdims=True).astype(jnp.float32)
    return (mask > 0) & (rank >= jnp.ceil(n * cl)) & (rank < jnp.ceil(n * ch))


def anchored_info_nce(scores: jax.Array, anchored: jax.Array) -> jax.Array:
    """The InfoNCE lower bound over the anchored words: ``scores [B, B, L]`` from
    :meth:`Critic.scores`, ``anchored [B, L]``; 0 when no word is anchored."""
    a = anchored.astype(scores.dtype)
    count = jnp.maximum(a.sum(), 1.0)
    positive = jnp.sum(jnp.diagonal(scores, axis1=0, axis2=1).T * a) / count  # F(T_j, Z_j): [B, L] at b = b'
    # Each anchored word's negatives depend only on its sentence b: one logsumexp per sentence. A
    # finite mask value keeps the gradient of a batch without anchored words 0, not NaN.
    per_sentence = jax.nn.logsumexp(jnp.where(anchored[None], scores, _MASKED).reshape(scores.shape[0], -1), axis=-1)
    negative = jnp.sum(per_sentence * a.sum(-1)) / count
    return jnp.where(a.sum() > 0, positive - negative + jnp.log(count), 0.0)


def bottleneck(local: jax.Array, mask: jax.Array, rng: jax.Array) -> jax.Array:
    """``mean_i ||T_i − T_π(i)||² / 2`` over the real tokens of ``local [B, L, H]`` (``mask [B, L]``),
    ``π(i)`` drawn uniformly among the real tokens."""
    flat, real = local.reshape(-1, local.shape[-1]), mask.reshape(-1) > 0
    partner = jax.random.categorical(rng, jnp.where(real, 0.0, -jnp.inf), shape=real.shape)
    gap = 0.5 * jnp.sum((flat - flat[partner]) ** 2, axis=-1)
    return jnp.sum(jnp.where(real, gap, 0.0)) / jnp.maximum(real.sum(), 1)


def infobert_loss(model: InfoBertModel, batch, rng, config):
    c = config.infobert
    f = model.classifier
    mask, types, labels, weights = batch["attention_mask"], batch["token_type_ids"], batch["labels"], batch["weights"]
    embeds = f.embed_words(batch["input_ids"])  # [B, L, H]
    start, ib_key = jax.random.split(rng)
    deltas, grads = ascent_path(f, batch, start, c, embeds, last_grad=True)
    total, terms, first_logits = 0.0, {"ce": 0.0, "ib": 0.0, "anchored_nce": 0.0, "anchored_share": 0.0}, None
    for k, (delta, grad) in enumerate(zip(deltas, grads)):
        out = f(None, mask, types, inputs_embeds=embeds + delta, output_hidden_states=True)
        local = out.hidden_states[0]
        anchored = anchored_tokens(grad, mask, c.cl, c.ch)
        step = {
            "ce": weighted_mean(optax.softmax_cross_entropy_with_integer_labels(out.logits, labels), weights),
            "ib": bottleneck(local, mask, jax.random.fold_in(ib_key, k)),
            "anchored_nce": anchored_info_nce(model.critic.scores(local, out.pooled), anchored),
            "anchored_share": anchored.sum() / jnp.maximum(mask.sum(), 1),
        }
        total = total + (step["ce"] + c.beta * step["ib"] - c.alpha * step["anchored_nce"]) / len(deltas)
        terms = {key: terms[key] + step[key] / len(deltas) for key in terms}
        first_logits = out.logits if first_logits is None else first_logits
    return total, {"train_accuracy": accuracy_of(first_logits, labels, weights), **terms}
