"""RIFT (Dong et al. 2021): robust fine-tuning that keeps the features informative about the
pretrained model's features (``../shared/METHODS.md`` §1).

The loss of a class-balanced batch (:func:`~jaxrobust.objectives.infonce.balanced_batches`: class
``c`` in rows ``c*n .. (c+1)*n - 1``)::

    w_clean · CE(f(x), y) + w_kl · KL(p(x) ‖ p(x̃)) + w_mi · InfoNCE_{|y}(g_y(S(x̃)), h_y(T(x)))

* ``x̃``: ASCC adversarial embeddings maximising the KL (:mod:`~jaxrobust.objectives.ascc`);
* ``S``: the pooled feature of the model being trained, on ``x̃``; ``T``: the pooled feature of a
  **frozen** copy of the pretrained model on ``x`` (its weights are :class:`Frozen` variables: no
  gradient, no optimiser update, not checkpointed -- rebuilt from the pretrained checkpoint). ``T``
  is a pure function of the clean tokens: training computes it once per example
  (:func:`teacher_features`, the objective's ``fixed_inputs``) and passes it in the batch as
  ``teacher_pooled``; a batch without it has it computed in the step;
* ``g_c``, ``h_c``: per-class projection heads (hidden -> 512 -> ReLU -> 256), trained;
* the conditional InfoNCE (:func:`~jaxrobust.objectives.infonce.conditional_info_nce`), ``tau``.

Settings come from ``config.rift`` (``w_clean, w_kl, w_mi, tau, head_hidden, head_dim``) and
``config.ascc`` (the inner maximisation). The classifier head is the model's own (the one FT
trains), not the reference code's two-layer head, so that RIFT and its baselines differ only in
the objective.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxrobust.objectives import ascc
from jaxrobust.objectives.ft import accuracy_of, eval_copy, weighted_mean
from jaxrobust.objectives.infonce import conditional_info_nce


class Frozen(nnx.Variable):
    """Weights that training never changes (not an ``nnx.Param``: no gradient, no update, not in
    checkpoints)."""


def freeze(module: nnx.Module) -> nnx.Module:
    """A copy of ``module`` whose parameters are :class:`Frozen`. Call it through
    :func:`~jaxrobust.objectives.ft.eval_copy`: the training loop's ``train()`` reaches it too."""
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    frozen = jax.tree.map(lambda v: Frozen(v.get_value()), params, is_leaf=lambda x: isinstance(x, nnx.Variable))
    return nnx.merge(graphdef, frozen, rest)


class ClassHeads(nnx.Module):
    """One MLP ``D -> hidden -> ReLU -> out`` per class, applied to ``[C, n, D]`` -> ``[C, n, out]``."""

    def __init__(self, num_classes: int, features: int, hidden: int, out: int, *, rngs: nnx.Rngs):
        init = nnx.initializers.lecun_normal()
        self.w1 = nnx.Param(init(rngs.params(), (num_classes, features, hidden)))
        self.b1 = nnx.Param(jnp.zeros((num_classes, 1, hidden)))
        self.w2 = nnx.Param(init(rngs.params(), (num_classes, hidden, out)))
        self.b2 = nnx.Param(jnp.zeros((num_classes, 1, out)))

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(jnp.einsum("cnd,cdh->cnh", x, self.w1[...]) + self.b1[...])
        return jnp.einsum("cnh,cho->cno", h, self.w2[...]) + self.b2[...]


class RiftModel(nnx.Module):
    """What RIFT trains: the classifier and the projection heads; and the frozen teacher."""

    def __init__(self, classifier: nnx.Module, teacher: nnx.Module, num_classes: int, settings, *, seed: int):
        rngs = nnx.Rngs(params=seed)
        features = classifier.cfg.hidden_size
        self.classifier = classifier
        self.teacher = freeze(teacher)
        self.student_heads = ClassHeads(num_classes, features, settings.head_hidden, settings.head_dim, rngs=rngs)
        self.teacher_heads = ClassHeads(num_classes, features, settings.head_hidden, settings.head_dim, rngs=rngs)


def teacher_features(model: RiftModel, batch) -> dict[str, jax.Array]:
    """``{"teacher_pooled": [B, H]}``: the frozen teacher's pooled feature of the clean ``batch``, in
    eval mode whatever mode training set."""
    return {"teacher_pooled": eval_copy(model.teacher)(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).pooled}


def rift_loss(model: RiftModel, batch, rng, config):
    del rng
    c = config.rift
    f = model.classifier
    ids, mask, types, labels, w = (batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels", "weights"))
    out = f(ids, mask, types)
    adv = f(None, mask, types, inputs_embeds=ascc.adversarial_embeddings(f, batch, config.ascc))
    teacher = batch["teacher_pooled"] if "teacher_pooled" in batch else teacher_features(model, batch)["teacher_pooled"]
    num_classes = model.student_heads.w1.shape[0]
    by_class = lambda x: x.reshape(num_classes, -1, x.shape[-1])  # rows are grouped by class
    mi = conditional_info_nce(model.student_heads(by_class(adv.pooled)), model.teacher_heads(by_class(teacher)), c.tau)
    ce = weighted_mean(optax.softmax_cross_entropy_with_integer_labels(out.logits, labels), w)
    kl = weighted_mean(ascc.kl_divergence(out.logits, adv.logits), w)
    loss = c.w_clean * ce + c.w_kl * kl + c.w_mi * mi
    return loss, {"train_accuracy": accuracy_of(out.logits, labels, w), "ce": ce, "kl": kl, "info_nce": mi}
