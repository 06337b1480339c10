"""InfoBERT: each of its own terms checked against a direct computation, and a tiny run in which the
information bottleneck falls while the model learns."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrobust.objectives.infobert import Critic, anchored_info_nce, anchored_tokens, bottleneck


def _softplus(x):
    return np.log1p(np.exp(x))


def _numpy_critic(critic: Critic, t: np.ndarray, z: np.ndarray) -> float:
    """``F(t, z)`` as the reference writes it: one MLP on the concatenation ``[t; z]``."""
    w1 = np.concatenate([np.asarray(critic.local.kernel[...]), np.asarray(critic.sentence.kernel[...])])  # [2H, D]
    h = np.maximum(np.concatenate([t, z]) @ w1 + np.asarray(critic.local.bias[...]), 0.0)
    return float(_softplus(h @ np.asarray(critic.out.kernel[...])[:, 0] + np.asarray(critic.out.bias[...])[0]))


def _numpy_anchored_nce(critic, local, sentence, anchored) -> float:
    """The reference's InfoNCE lower bound over the list of anchored (local, sentence) pairs."""
    pairs = [(local[b, l], sentence[b]) for b, l in zip(*np.nonzero(anchored))]
    n = len(pairs)
    t0 = np.mean([_numpy_critic(critic, t, z) for t, z in pairs])
    t1 = np.array([[_numpy_critic(critic, pairs[j][0], pairs[i][1]) for j in range(n)] for i in range(n)])
    lse = np.log(np.exp(t1 - t1.max(1, keepdims=True)).sum(1)) + t1.max(1)
    return float(t0 - lse.mean() + math.log(n))


def test_anchored_info_nce_equals_the_pairwise_numpy_computation():
    rng = np.random.default_rng(0)
    local, sentence = rng.normal(size=(3, 5, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    anchored = np.zeros((3, 5), bool)
    anchored[0, [1, 3]] = anchored[1, [0]] = anchored[2, [2, 3, 4]] = True
    critic = Critic(4, 6, rngs=nnx.Rngs(params=0))
    ours = float(anchored_info_nce(critic.scores(jnp.asarray(local), jnp.asarray(sentence)), jnp.asarray(anchored)))
    assert ours == pytest.approx(_numpy_anchored_nce(critic, local, sentence, anchored), rel=1e-5)


def test_anchored_info_nce_reads_the_anchored_words_only():
    rng = np.random.default_rng(1)
    local, sentence = rng.normal(size=(2, 6, 4)).astype(np.float32), rng.normal(size=(2, 4)).astype(np.float32)
    anchored = np.zeros((2, 6), bool)
    anchored[0, [0, 2]] = anchored[1, [4, 5]] = True
    critic = Critic(4, 6, rngs=nnx.Rngs(params=0))
    value = lambda x: float(anchored_info_nce(critic.scores(jnp.asarray(x), jnp.asarray(sentence)), jnp.asarray(anchored)))
    moved = local.copy()
    moved[~anchored] += 10.0 * rng.normal(size=moved[~anchored].shape).astype(np.float32)
    assert value(moved) == pytest.approx(value(local), rel=1e-6)
    moved = local.copy()
    moved[1, 4] += 1.0
    assert abs(value(moved) - value(local)) > 1e-4
    none = float(anchored_info_nce(critic.scores(jnp.asarray(local), jnp.asarray(sentence)), jnp.zeros((2, 6), bool)))
    assert none == 0.0


def test_anchored_tokens_follow_the_references_rank_rule():
    """Per example, sort its real tokens by gradient norm (ascending) and keep ranks ceil(n cl) to
    ceil(n ch) - 1, as the authors' feature_ranking does."""
    rng = np.random.default_rng(2)
    grad = rng.normal(size=(4, 12, 3)).astype(np.float32)
    lengths = [12, 7, 10, 3]
    mask = np.array([[1] * n + [0] * (12 - n) for n in lengths], np.int32)
    ours = np.asarray(anchored_tokens(jnp.asarray(grad), jnp.asarray(mask), 0.5, 0.9))
    for b, n in enumerate(lengths):
        order = np.argsort(np.linalg.norm(grad[b, :n], axis=-1), kind="stable")
        expected = set(order[math.ceil(n * 0.5) : math.ceil(n * 0.9)].tolist())
        assert set(np.nonzero(ours[b])[0].tolist()) == expected


def test_bottleneck_is_half_the_mean_squared_gap_to_random_real_tokens():
    """Averaged over draws of the partners, the bound is half the mean squared distance over all
    pairs of real tokens; padding positions are never read."""
    rng = np.random.default_rng(3)
    local = rng.normal(size=(2, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], np.int32)
    real = local[mask > 0]
    expected = 0.5 * np.mean(((real[:, None] - real[None]) ** 2).sum(-1))
    padded = local.copy()
    padded[mask == 0] = 1e3
    draws = jax.vmap(lambda k: bottleneck(jnp.asarray(padded), jnp.asarray(mask), k))(jax.random.split(jax.random.key(0), 4000))
    assert float(draws.max()) < 1e2  # a padding token as a partner would give about 1e6
    assert float(draws.mean()) == pytest.approx(expected, rel=0.03)


def _infobert_run(wide_model_dir, tmp_path, beta: float) -> tuple[dict, list[dict]]:
    """The tiny wide BERT trained with infobert (FreeLB's steps sized to its small embeddings, as in
    the FreeLB test): the results and the logged steps."""
    import conftest
    from jaxrobust.train import train_and_evaluate

    tmp_path.mkdir()
    c = conftest.make_tiny_config(wide_model_dir, conftest.write_tiny_task(tmp_path))
    c.objective, c.buckets = "infobert", (16,)
    c.infobert.update(beta=beta, init_mag=0.02, adv_lr=0.003, max_norm=0.01)
    results = train_and_evaluate(c, tmp_path / "run")
    steps = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    return results, steps


@pytest.mark.slow
def test_infobert_learns_and_its_bottleneck_falls(wide_model_dir, tmp_path):
    """With the authors' weights the model learns the task while the bottleneck on its token
    features falls; without the bottleneck (beta 0) the same run's token features spread instead."""
    results, steps = _infobert_run(wide_model_dir, tmp_path / "a", beta=5e-3)
    losses, ib = np.array([r["loss"] for r in steps]), np.array([r["ib"] for r in steps])
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert results["dev_accuracy"] > 0.9
    assert np.mean(ib[-5:]) < 0.7 * np.mean(ib[:5])
    assert 0.3 < np.mean([r["anchored_share"] for r in steps]) < 0.5  # ranks 0.5 to 0.9 of each text
    assert np.all(np.isfinite([r["anchored_nce"] for r in steps]))
    _, free = _infobert_run(wide_model_dir, tmp_path / "b", beta=0.0)
    assert np.mean([r["ib"] for r in free[-5:]]) > 1.5 * np.mean(ib[-5:])
