"""The class-conditional InfoNCE of RIFT and the class-balanced batches it needs.

RIFT keeps the features ``S`` of the model being fine-tuned (on the adversarial input) informative
about the features ``T`` of the frozen pretrained model (on the clean input), given the label: within
each class, ``(S_i, T_i)`` of the same example is the positive pair and the other examples of that
class in the batch are the negatives. A class-balanced batch lays the classes out in equal chunks, so
the per-class terms are one batched computation over a ``[C, n, D]`` array.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.data.encoding import Encoded, _collate, bucket_for


def _normalise(x: jax.Array) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def info_nce(student: jax.Array, teacher: jax.Array, tau: float) -> jax.Array:
    """InfoNCE of ``student, teacher [..., n, D]`` (L2-normalised here), one value per leading index.

    ``F[i, j] = <s_i, t_j> / tau``; for each teacher ``j`` the positive is student ``j`` among all
    students (softmax over ``i``): ``-mean_j log softmax_i(F[:, j])[j]``.
    """
    scores = jnp.einsum("...id,...jd->...ij", _normalise(student), _normalise(teacher)) / tau
    log_p = jax.nn.log_softmax(scores, axis=-2)  # over students
    return -jnp.mean(jnp.diagonal(log_p, axis1=-2, axis2=-1), axis=-1)


def conditional_info_nce(student: jax.Array, teacher: jax.Array, tau: float) -> jax.Array:
    """Mean over classes of the InfoNCE within each class: ``student, teacher [C, n, D]``."""
    return jnp.mean(info_nce(student, teacher, tau))


def balanced_batches(
    encoded: Sequence[Encoded],
    batch_size: int,
    num_classes: int,
    buckets: Sequence[int],
    pad_id: int,
    seed: int,
) -> list[dict[str, np.ndarray]]:
    """One epoch of class-balanced batches: ``batch_size / num_classes`` examples of each class per
    batch, class ``c`` in rows ``c*n .. (c+1)*n - 1``; each class shuffled by ``seed``; as many
    batches as the rarest class fills (the rest of the epoch is dropped, as in the reference).

    Batches follow the length buckets as unbalanced training does: the examples of the shortest
    bucket are batched first, padded to that bucket, and what a class has left over joins the next
    bucket's examples, so a short text is padded to a longer bucket only when the classes cannot be
    balanced otherwise. Each batch is padded to the bucket of its longest example; every row is a
    real example."""
    if batch_size % num_classes:
        raise ValueError(f"batch size {batch_size} is not a multiple of the {num_classes} classes")
    n = batch_size // num_classes
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation([i for i, e in enumerate(encoded) if e.label == c]) for c in range(num_classes)]
    bucket_of = [bucket_for(e.length, buckets) for e in encoded]
    batches, left = [], [[] for _ in range(num_classes)]
    for bucket in sorted(buckets):
        pools = [left[c] + [i for i in by_class[c] if bucket_of[i] == bucket] for c in range(num_classes)]
        count = min(len(p) for p in pools) // n
        for b in range(count):
            index = np.concatenate([p[b * n : (b + 1) * n] for p in pools]).astype(np.int64)
            length = bucket_for(max(encoded[i].length for i in index), buckets)
            batches.append(_collate([encoded[i] for i in index], index, batch_size, length, pad_id))
        left = [p[count * n :] for p in pools]
    return [batches[i] for i in rng.permutation(len(batches))]
