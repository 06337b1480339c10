"""Robust fine-tuning objectives on a tiny model: they learn, and their inner maximisations ascend."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrobust.data.encoding import Encoded
from jaxrobust.errors import JaxRobustError
from jaxrobust.models import load_classifier
from jaxrobust.objectives import get_objective
from jaxrobust.objectives.freelb import ascent_step, initial_delta
from jaxrobust.objectives.infonce import balanced_batches, conditional_info_nce, info_nce
from jaxrobust.train import train_and_evaluate


def _losses(workdir):
    return [r["loss"] for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.slow
def test_freelb_trains_the_tiny_model(tiny_config, tmp_path):
    tiny_config.objective = "freelb"
    tiny_config.buckets = (16,)  # one batch shape: one compilation of the (costlier) step
    # The tiny model's word embeddings have norms ~0.1 per token and its prediction rests on one word:
    # ascent steps of 0.01 already keep it at chance (loss 0.69), steps of 0.003 leave it learnable.
    tiny_config.freelb.update(init_mag=0.02, adv_lr=0.003, max_norm=0.01)
    results = train_and_evaluate(tiny_config, tmp_path / "run")
    losses = _losses(tmp_path / "run")
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert results["dev_accuracy"] > 0.9


@pytest.mark.slow
def test_freelb_ascent_raises_the_loss_and_stays_in_the_ball(tiny_model_dir):
    directory, _ = tiny_model_dir("bert", num_labels=2)
    model = load_classifier(str(directory), 2).model
    model.eval()
    ids = jnp.array([[0, 8, 9, 2, 1], [0, 10, 11, 12, 2]], jnp.int32)
    mask = (ids != 1).astype(jnp.int32)
    labels = jnp.array([0, 1])
    embeds = model.embed_words(ids)

    def loss(delta):
        logits = model(None, mask, jnp.zeros_like(ids), inputs_embeds=embeds + delta).logits
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()

    delta = initial_delta(jax.random.key(0), mask, embeds.shape[-1], init_mag=0.6)
    assert float(jnp.abs(delta[0, -1]).max()) == 0.0  # padding is never perturbed
    for _ in range(3):
        before = loss(delta)
        delta = ascent_step(delta, jax.grad(loss)(delta), mask, adv_lr=0.05, max_norm=0.5)
        assert loss(delta) > before
        norms = jnp.sqrt(jnp.sum(delta**2, axis=(1, 2)))
        assert (norms <= 0.5 + 1e-5).all()
    assert float(jnp.abs(delta[0, -1]).max()) == 0.0


def test_unknown_objective_is_named():
    with pytest.raises(JaxRobustError, match="unknown objective 'rifty'"):
        get_objective("rifty")


def _numpy_info_nce(s, t, tau):
    s = s / np.linalg.norm(s, axis=-1, keepdims=True)
    t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    total = 0.0
    for j in range(len(t)):
        scores = np.array([s[i] @ t[j] / tau for i in range(len(s))])
        total += -(scores[j] - np.log(np.exp(scores).sum()))
    return total / len(t)


def test_conditional_info_nce_equals_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 5, 8)), rng.normal(size=(2, 5, 8))
    expected = np.mean([_numpy_info_nce(s[c], t[c], 0.2) for c in range(2)])
    assert float(conditional_info_nce(jnp.asarray(s), jnp.asarray(t), 0.2)) == pytest.approx(expected, rel=1e-5)
    # Aligned features score better than shuffled ones.
    assert float(info_nce(jnp.asarray(t[0]), jnp.asarray(t[0]), 0.2)) < float(info_nce(jnp.asarray(s[0]), jnp.asarray(t[0]), 0.2))


def test_balanced_batches_hold_equal_class_chunks():
    lengths = [3, 5, 9, 4, 6, 7, 2, 8, 3, 5, 4]
    labels = [0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0]  # 7 of class 0, 4 of class 1
    encoded = [Encoded(np.arange(n, dtype=np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32), [], y) for n, y in zip(lengths, labels)]
    batches = balanced_batches(encoded, batch_size=4, num_classes=2, buckets=(4, 8, 16), pad_id=0, seed=1)
    assert len(batches) == 2  # the rarer class fills two batches of 2
    seen = np.concatenate([b["index"] for b in batches])
    assert len(set(seen.tolist())) == len(seen)  # no example twice
    for b in batches:
        np.testing.assert_array_equal(b["labels"], [0, 0, 1, 1])
        assert (b["weights"] == 1).all()
        longest = max(lengths[i] for i in b["index"])
        assert b["input_ids"].shape[1] == min(bucket for bucket in (4, 8, 16) if bucket >= longest)
    again = balanced_batches(encoded, batch_size=4, num_classes=2, buckets=(4, 8, 16), pad_id=0, seed=1)
    assert all((a["index"] == b["index"]).all() for a, b in zip(batches, again))
    with pytest.raises(ValueError, match="not a multiple"):
        balanced_batches(encoded, batch_size=3, num_classes=2, buckets=(16,), pad_id=0, seed=1)


def test_balanced_batches_draw_texts_of_every_length_together():
    """A batch's texts are drawn at random, not grouped by length (grouping cost RIFT 11 points):
    short and long texts share batches, and each batch is padded to its longest text's bucket."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 16, size=200)
    labels = rng.integers(0, 2, size=200)
    encoded = [Encoded(np.arange(n, dtype=np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32), [], y) for n, y in zip(lengths, labels)]
    batches = balanced_batches(encoded, batch_size=8, num_classes=2, buckets=(4, 8, 16), pad_id=0, seed=3)
    assert len(batches) == min(np.sum(labels == 0), np.sum(labels == 1)) // 4
    seen = np.concatenate([b["index"] for b in batches])
    assert len(set(seen.tolist())) == len(seen)
    for b in batches:
        np.testing.assert_array_equal(b["labels"], [0] * 4 + [1] * 4)
        assert b["input_ids"].shape[1] == max(min(x for x in (4, 8, 16) if x >= lengths[i]) for i in b["index"])
    mixed = [b for b in batches if min(lengths[b["index"]]) <= 4 and max(lengths[b["index"]]) > 8]
    assert len(mixed) > len(batches) // 4


# --- word substitutions, ASCC and RIFT ------------------------------------------------------------

NEIGHBOURS = {"good": ["great"], "great": ["good"], "bad": ["boring"], "boring": ["bad"], "film": ["plot"], "plot": ["film"]}


@pytest.fixture
def neighbours_file(tmp_path):
    path = tmp_path / "neighbours.json"
    path.write_text(json.dumps(NEIGHBOURS))
    return path


def _tiny_substitutions(tiny_model_dir, neighbours_file, k=2):
    from transformers import AutoTokenizer

    from jaxrobust.attacks.synonyms import load_synonyms
    from jaxrobust.objectives.substitutions import token_substitutions

    directory, _ = tiny_model_dir("bert", num_labels=2)
    tok = AutoTokenizer.from_pretrained(str(directory))
    return tok, token_substitutions(tok, load_synonyms(f"counterfitted:{neighbours_file}", k=k, min_cos=0.0), k)


def test_token_substitutions_follow_the_whole_word_rule(tiny_model_dir, neighbours_file):
    tok, subs = _tiny_substitutions(tiny_model_dir, neighbours_file)
    rows = [["[CLS]", "the", "good", "film", "was", "bad", "[SEP]"], ["[CLS]", "good", "film", "##s", "[SEP]", "[PAD]", "[PAD]"]]
    ids = np.array([tok.convert_tokens_to_ids(r) for r in rows])
    slot_ids, slot_mask = subs.of(ids)
    assert slot_ids.shape == ids.shape + (3,)
    np.testing.assert_array_equal(slot_ids[..., 0], ids)  # slot 0 is the token itself
    assert slot_mask[..., 0].all()
    great, plot, boring = tok.convert_tokens_to_ids(["great", "plot", "boring"])
    assert slot_mask[0].tolist() == [[True, False, False]] * 2 + [[True, True, False]] * 2 + [[True, False, False]] + [[True, True, False]] + [[True, False, False]]
    assert (slot_ids[0, 2, 1], slot_ids[0, 3, 1], slot_ids[0, 5, 1]) == (great, plot, boring)
    assert slot_mask[1, 1, 1] and not slot_mask[1, 2, 1:].any()  # the "film" of "films" is not a word


def _tiny_batch(tok, subs, texts, labels):
    enc = tok(texts, padding=True, return_tensors="np")
    batch = {
        "input_ids": jnp.asarray(enc["input_ids"], jnp.int32),
        "attention_mask": jnp.asarray(enc["attention_mask"], jnp.int32),
        "token_type_ids": jnp.zeros(enc["input_ids"].shape, jnp.int32),
        "labels": jnp.asarray(labels),
        "weights": jnp.ones(len(texts), jnp.float32),
    }
    batch["slot_ids"], batch["slot_mask"] = map(jnp.asarray, subs.of(enc["input_ids"]))
    batch["content"] = jnp.asarray(subs.content(enc["input_ids"], enc["attention_mask"]))
    return batch


def test_ascc_weights_stay_on_the_simplex_and_raise_the_kl(tiny_model_dir, tmp_path, trained_tiny_run):
    from jaxrobust.objectives import ascc
    from jaxrobust.train import load_run

    # Candidates of the other class, so that the trained model's prediction depends on the weights
    # (it treats the synonyms of NEIGHBOURS, good/great and bad/boring, alike: their KLs are ~1e-6);
    # not good/bad, which the synonym loader drops as WordNet antonyms.
    opposites = tmp_path / "opposites.json"
    opposites.write_text(json.dumps({"good": ["boring"], "great": ["bad"], "bad": ["great"], "boring": ["good"]}))
    tok, subs = _tiny_substitutions(tiny_model_dir, opposites)
    model = load_run(trained_tiny_run)[1].classifier.model
    batch = _tiny_batch(tok, subs, ["the film was good", "a very bad plot", "it was great"], [1, 0, 1])
    clean = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    slot_embeds = model.embed_words(batch["slot_ids"])
    logits_fn = ascc.eval_logits_fn(model, batch)
    kl_of = lambda w: ascc.kl_divergence(clean, logits_fn(ascc.mix(slot_embeds, w)))
    kwargs = dict(steps=5, lr=1.0, entropy_weight=0.0)
    w = ascc.search(logits_fn, slot_embeds, batch["slot_mask"], batch["attention_mask"], lambda adv: ascc.kl_divergence(clean, adv), **kwargs)
    mask = np.asarray(batch["slot_mask"])
    np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0, atol=1e-5)
    assert (np.asarray(w) >= 0).all() and (np.asarray(w)[~mask] == 0).all()
    uniform = ascc.slot_weights(jnp.zeros(mask.shape), batch["slot_mask"])
    assert float(kl_of(w).sum()) > 2 * float(kl_of(uniform).sum()) > 0  # the search multiplies the KL
    # The entropy penalty drives the weights towards single words.
    sparse = ascc.search(logits_fn, slot_embeds, batch["slot_mask"], batch["attention_mask"], lambda adv: ascc.kl_divergence(clean, adv), **{**kwargs, "entropy_weight": 1.0})
    free = mask[..., 1:].any(-1)
    assert float(np.asarray(sparse).max(-1)[free].mean()) > float(np.asarray(w).max(-1)[free].mean())


def test_ascc_adversary_ignores_dropout(tiny_model_dir, neighbours_file, trained_tiny_run):
    """The search is anchored on the eval-mode prediction: with the model in train mode (dropout
    on, as inside a train step) the adversary depends on the weights and the batch only."""
    import ml_collections

    from jaxrobust.objectives import ascc
    from jaxrobust.train import load_run

    tok, subs = _tiny_substitutions(tiny_model_dir, neighbours_file)
    model = load_run(trained_tiny_run)[1].classifier.model
    batch = _tiny_batch(tok, subs, ["the film was good", "a very bad plot", "it was great"], [1, 0, 1])
    model.train()
    noisy = [model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits for _ in range(2)]
    assert not np.allclose(noisy[0], noisy[1])  # dropout is really on
    settings = ml_collections.ConfigDict(dict(steps=3, lr=1.0, entropy_weight=1.0))
    first, second = (ascc.adversarial_embeddings(model, batch, settings) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, model.embed_words(batch["input_ids"]))  # and it did move


@pytest.mark.slow
def test_adv_in_training_attack_substitutes_candidates_and_raises_the_loss(tiny_model_dir, neighbours_file, trained_tiny_run):
    from jaxrobust.objectives.adv import substitute, substitution_gains
    from jaxrobust.train import load_run

    tok, subs = _tiny_substitutions(tiny_model_dir, neighbours_file)
    model = load_run(trained_tiny_run)[1].classifier.model
    batch = _tiny_batch(tok, subs, ["the film was good", "a very bad plot", "it was great and good"], [1, 0, 1])
    args = [batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels", "slot_ids", "slot_mask")]
    gains = substitution_gains(model, *args)
    adv = np.asarray(substitute(batch["input_ids"], batch["content"], batch["slot_ids"], gains, budget=0.25))
    ids, slot_ids, slot_mask = (np.asarray(batch[k]) for k in ("input_ids", "slot_ids", "slot_mask"))
    changed = adv != ids
    rows = changed.any(axis=1)
    assert rows.sum() >= 2
    assert (np.asarray(gains)[~rows] <= 0).all()  # a row is left alone only if no substitution gains
    # At most ceil(0.25 * real tokens) positions, only where a candidate exists, and only to a candidate.
    n_real = np.asarray(batch["attention_mask"]).sum(1) - 2  # [CLS] and [SEP]
    np.testing.assert_array_equal(batch["content"], n_real)
    assert (changed.sum(1) <= np.ceil(0.25 * n_real)).all()
    b, t = np.nonzero(changed)
    assert all(adv[i, j] in slot_ids[i, j, 1:][slot_mask[i, j, 1:]] for i, j in zip(b, t))

    def ce(input_ids):
        logits = model(jnp.asarray(input_ids), batch["attention_mask"], batch["token_type_ids"]).logits
        return np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]))

    assert (ce(adv)[rows] > ce(ids)[rows]).all()


# --- each objective's own terms, at a fixed model ---------------------------------------------------
# "The loss falls and dev accuracy is high" holds for an objective whose adversary does nothing as
# well; these tests call the loss functions on one small batch and check the terms they add to the CE.

TEXTS = ["the film was good", "a very bad plot", "it was great and good", "boring and bad"]
LABELS = [1, 0, 1, 0]


def _wide_model(wide_model_dir):
    model = load_classifier(str(wide_model_dir), 2).model
    model.eval()  # no dropout: every loss below sees the same function
    return model


def _clean_ce(model, batch) -> np.ndarray:
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    return np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]))


def _jitted_loss(loss_fn, config):
    from flax import nnx

    return nnx.jit(lambda model, batch: loss_fn(model, batch, None, config))


def test_ascc_loss_adds_beta_times_a_kl_its_search_raised(wide_model_dir, tiny_model_dir, neighbours_file):
    from jaxrobust.objectives.ascc import ascc_loss
    from jaxrobust.train import default_config

    tok, subs = _tiny_substitutions(tiny_model_dir, neighbours_file)
    model = _wide_model(wide_model_dir)
    batch = _tiny_batch(tok, subs, TEXTS, LABELS)
    config = default_config()
    config.ascc.update(lr=1.0, entropy_weight=0.0, beta=2.0, steps=0)
    _, start = _jitted_loss(ascc_loss, config)(model, batch)  # 0 steps: every word's slots weighed uniformly
    config.ascc.steps = 5
    loss, metrics = _jitted_loss(ascc_loss, config)(model, batch)
    clean = _clean_ce(model, batch).mean()
    assert float(metrics["ce"]) == pytest.approx(clean, rel=1e-5)  # the CE is the clean input's
    assert float(metrics["kl"]) > 1.5 * float(start["kl"]) > 0  # the inner maximisation ascends the KL
    assert float(loss) == pytest.approx(clean + 2.0 * float(metrics["kl"]), rel=1e-5)


def test_adv_loss_adds_an_attacked_half_with_a_higher_ce(wide_model_dir, tiny_model_dir, neighbours_file):
    from jaxrobust.objectives.adv import adv_loss
    from jaxrobust.train import default_config

    tok, subs = _tiny_substitutions(tiny_model_dir, neighbours_file)
    model = _wide_model(wide_model_dir)
    batch = _tiny_batch(tok, subs, TEXTS, LABELS)
    config = default_config()
    config.adv.update(share=0.5, budget=0.25)
    loss, metrics = adv_loss(model, batch, None, config)
    ce = _clean_ce(model, batch)
    B, n = len(TEXTS), 2  # the first ceil(0.5 * 4) rows are attacked
    # The loss is the mean CE over the B clean rows and the n attacked ones.
    attacked_ce = ((B + n) * float(loss) - ce.sum()) / n
    assert float(metrics["adv_changed"]) > 0
    assert attacked_ce > ce[:n].mean() + 0.02  # the same rows, clean (measured: 0.887 against 0.818)


def test_freelb_loss_averages_the_losses_of_an_ascending_perturbation(wide_model_dir):
    from transformers import AutoTokenizer

    from jaxrobust.objectives.freelb import freelb_loss
    from jaxrobust.train import default_config

    tok = AutoTokenizer.from_pretrained(str(wide_model_dir))
    enc = tok(TEXTS, padding=True, return_tensors="np")
    batch = {k: jnp.asarray(enc[k], jnp.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
    batch.update(labels=jnp.asarray(LABELS), weights=jnp.ones(len(TEXTS), jnp.float32))
    model = _wide_model(wide_model_dir)
    config = default_config()
    config.freelb.update(init_mag=0.0, adv_lr=0.05, max_norm=0.0)  # delta_0 = 0: L_0 is the clean CE
    losses = []
    for steps in (1, 2, 3):
        config.freelb.steps = steps
        losses.append(float(freelb_loss(model, batch, jax.random.key(0), config)[0]))
    assert losses[0] == pytest.approx(_clean_ce(model, batch).mean(), rel=1e-5)
    # (L_0 + ... + L_{K-1}) / K grows with K: each ascent step raised the CE (measured 0.790, 0.853, 0.919).
    assert losses[0] + 0.02 < losses[1] < losses[2] - 0.02


RIFT_TEXTS = ["the film was bad", "a very bad plot", "boring and bad", "it was boring",
              "the film was good", "a very good plot", "it was great and good", "great and good"]
RIFT_LABELS = [0, 0, 0, 0, 1, 1, 1, 1]  # class-balanced, grouped by class as balanced_batches lays them


def _rift_setup(wide_model_dir, tiny_model_dir, neighbours_file, **weights):
    from jaxrobust.train import default_config

    tok, subs = _tiny_substitutions(tiny_model_dir, neighbours_file)
    config = default_config()
    config.objective = "rift"
    config.ascc.update(steps=3, lr=1.0, entropy_weight=0.0)
    config.rift.update(head_hidden=16, head_dim=8, **weights)
    model = get_objective("rift").wrap(_wide_model(wide_model_dir), 2, config)  # as training builds it
    model.eval()
    return config, model, _tiny_batch(tok, subs, RIFT_TEXTS, RIFT_LABELS)


def test_rift_loss_is_its_three_weighted_terms(wide_model_dir, tiny_model_dir, neighbours_file):
    from jaxrobust.objectives import ascc
    from jaxrobust.objectives.ft import eval_copy
    from jaxrobust.objectives.rift import rift_loss

    config, model, batch = _rift_setup(wide_model_dir, tiny_model_dir, neighbours_file, w_clean=1.0, w_kl=2.0, w_mi=0.5)
    loss, m = _jitted_loss(rift_loss, config)(model, batch)
    ce, kl, mi = (float(m[k]) for k in ("ce", "kl", "info_nce"))
    assert ce == pytest.approx(_clean_ce(model.classifier, batch).mean(), rel=1e-5)
    assert float(loss) == pytest.approx(1.0 * ce + 2.0 * kl + 0.5 * mi, rel=1e-5)
    config.ascc.steps = 0
    start = float(_jitted_loss(rift_loss, config)(model, batch)[1]["kl"])
    assert kl > 1.5 * start > 0  # the KL is to the ASCC adversary the search found
    # The InfoNCE by hand: the trained model's features on the adversary, the frozen teacher's on the
    # clean text, through the per-class heads, class by class.
    config.ascc.steps = 3
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    adv = model.classifier(None, mask, types, inputs_embeds=ascc.adversarial_embeddings(model.classifier, batch, config.ascc))
    student = np.asarray(model.student_heads(adv.pooled.reshape(2, 4, -1)))
    teacher = np.asarray(model.teacher_heads(eval_copy(model.teacher)(ids, mask, types).pooled.reshape(2, 4, -1)))
    expected = np.mean([_numpy_info_nce(student[c], teacher[c], config.rift.tau) for c in range(2)])
    assert mi == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow  # 30 train steps: one compilation of the RIFT step, ~30 s on 2 CPU cores
def test_rift_step_with_precomputed_teacher_features_equals_the_straightforward_one(wide_model_dir, tiny_model_dir, neighbours_file):
    """Training passes the frozen teacher's features in the batch, computed once per example by the
    objective's fixed inputs; the loss and every gradient equal those of the step that runs the
    teacher itself. The student is moved off the teacher first, so a step that read the student's
    features instead would differ."""
    import jax
    from flax import nnx

    from jaxrobust.objectives.rift import rift_loss

    config, model, batch = _rift_setup(wide_model_dir, tiny_model_dir, neighbours_file, w_clean=1.0, w_kl=2.0, w_mi=0.5)
    params = nnx.state(model.classifier, nnx.Param)
    nnx.update(model.classifier, jax.tree.map(lambda p: p * 1.1, params))
    fixed = nnx.jit(get_objective("rift").fixed_inputs)(model, batch)
    assert set(fixed) == {"teacher_pooled"} and fixed["teacher_pooled"].shape == (8, model.classifier.cfg.hidden_size)
    student = model.classifier(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).pooled
    assert np.abs(np.asarray(student) - np.asarray(fixed["teacher_pooled"])).max() > 1e-2

    grad = nnx.jit(lambda m, b: nnx.value_and_grad(lambda m: rift_loss(m, b, None, config), has_aux=True)(m))
    (loss, metrics), grads = grad(model, batch)
    (loss_fixed, metrics_fixed), grads_fixed = grad(model, {**batch, **fixed})
    assert float(loss_fixed) == pytest.approx(float(loss), abs=1e-5)
    assert float(metrics_fixed["info_nce"]) == pytest.approx(float(metrics["info_nce"]), abs=1e-5)
    flat, flat_fixed = jax.tree.leaves(grads), jax.tree.leaves(grads_fixed)
    assert len(flat) == len(flat_fixed) > 0
    for g, g_fixed in zip(flat, flat_fixed):
        np.testing.assert_allclose(np.asarray(g_fixed), np.asarray(g), atol=1e-5, rtol=0)


def test_rift_training_lowers_the_info_nce(wide_model_dir, tiny_model_dir, neighbours_file):
    """The InfoNCE term trains: 30 steps on one batch bring it well below its start, measured in eval
    mode on that batch (measured: 1.47 -> 0.83; with w_mi = 0, 1.47 -> 1.39)."""
    from flax import nnx

    from jaxrobust.objectives.rift import rift_loss
    from jaxrobust.train import make_optimizer, make_train_step

    config, model, batch = _rift_setup(wide_model_dir, tiny_model_dir, neighbours_file, w_clean=1.0, w_kl=1.0, w_mi=0.5)
    config.lr, config.warmup_ratio = 1e-3, 0.0
    loss_of = _jitted_loss(rift_loss, config)
    info_nce = lambda: float(loss_of(model, batch)[1]["info_nce"])
    before = info_nce()
    optimizer = nnx.Optimizer(model, make_optimizer(config, 100), wrt=nnx.Param)
    step = make_train_step(rift_loss, config)
    model.train()
    for i in range(30):
        step(model, optimizer, batch, jax.random.key(i))
    model.eval()
    assert info_nce() < 0.7 * before


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["adv", "ascc", "rift"])
def test_word_substitution_objectives_train_the_tiny_model(objective, tiny_config, neighbours_file, tmp_path):
    tiny_config.objective = objective
    tiny_config.buckets = (16,)  # one batch shape: one compilation of the (costlier) step
    tiny_config.synonyms.update(source=f"counterfitted:{neighbours_file}", k=2, min_cos=0.0)
    tiny_config.ascc.steps = 3
    results = train_and_evaluate(tiny_config, tmp_path / "run")
    losses = _losses(tmp_path / "run")
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert results["dev_accuracy"] > 0.9
    if objective == "adv":  # the in-step attack substituted words in training, not only in the unit test
        records = map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
        assert np.mean([r["adv_changed"] for r in records if "loss" in r]) > 0.25


@pytest.mark.slow
def test_rift_teacher_never_changes(tiny_config, tiny_model_dir, neighbours_file):
    from flax import nnx

    from jaxrobust.objectives import get_objective
    from jaxrobust.objectives.rift import Frozen
    from jaxrobust.train import epoch_batches, make_optimizer, make_train_step, prepare, training_substitutions

    tiny_config.objective = "rift"
    tiny_config.buckets = (16,)
    tiny_config.synonyms.update(source=f"counterfitted:{neighbours_file}", k=2, min_cos=0.0)
    tiny_config.ascc.steps = 2
    prepared = prepare(tiny_config)
    objective = get_objective("rift")
    trained = objective.wrap(prepared.classifier.model, 2, tiny_config)
    teacher_before = jax.tree.map(np.array, nnx.state(trained.teacher, Frozen))
    student_before = jax.tree.map(np.array, nnx.state(trained.classifier, nnx.Param))
    assert len(jax.tree.leaves(nnx.state(trained.teacher, nnx.Param))) == 0  # nothing of it is a Param
    optimizer = nnx.Optimizer(trained, make_optimizer(tiny_config, 10), wrt=nnx.Param)
    step = make_train_step(objective.loss, tiny_config)
    batches = epoch_batches(prepared, tiny_config, 0, training_substitutions(prepared, tiny_config))
    assert all(np.bincount(b["labels"], minlength=2).tolist() == [4, 4] for b in batches)  # class-balanced
    trained.train()
    for i, batch in enumerate(batches[:3]):
        metrics = step(trained, optimizer, batch, jax.random.key(i))
        assert np.isfinite(float(metrics["info_nce"]))
    teacher_after = nnx.state(trained.teacher, Frozen)
    jax.tree.map(np.testing.assert_array_equal, teacher_before, jax.tree.map(np.array, teacher_after))
    moved = jax.tree.map(lambda a, b: not np.array_equal(a, np.asarray(b)), student_before, nnx.state(trained.classifier, nnx.Param))
    assert any(jax.tree.leaves(moved))  # while the student did train


def test_every_experiment_config_loads_with_a_known_objective():
    from jaxrobust.configs import EXPERIMENTS_DIR, load_config

    names = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py"))
    assert {"rift_minilm", "ft_minilm", "adv_minilm", "freelb_minilm", "ascc_minilm"} <= set(names)
    from jaxrobust.transfer import check_transfer_config, is_transfer

    for name in names:
        config = load_config(name)
        if is_transfer(config):  # the transfer study names its tasks and models
            check_transfer_config(config)
        elif "study" in config:  # a study names the experiments it runs: one per method, or one per model
            runs = {m: load_config(e) for m, e in config.experiments.items()}
            if config.get("row_name", "method") == "method":
                assert all(run.objective == m for m, run in runs.items())
            else:
                # rows are models (or one model trained two ways): no two rows may run the same config
                assert len({run.to_json(sort_keys=True) for run in runs.values()}) == len(runs)
                assert all(get_objective(run.objective) for run in runs.values())
        else:
            get_objective(config.objective)
    assert load_config("ft_minilm").train_subset == load_config("rift_minilm").train_subset  # same protocol
