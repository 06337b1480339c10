"""The gradient attack, the token layout it runs on, the string-level check and the vmapped sweep."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.attacks import engine
from jaxrobust.attacks.layout import DELETE, ORIGINAL, build_tokens, make_layout, prepare_examples
from jaxrobust.attacks.run import AttackSettings, attack_examples, load_target
from jaxrobust.attacks.sweep import sweep
from jaxrobust.data.tasks import Example
from jaxrobust.models.loading import load_tokenizer

# Sentiment-flipping candidates over the tiny vocabulary; "films" is two tokens (film ##s).
CANDIDATES = {
    "good": ["great", "bad", "boring"],
    "great": ["good", "bad"],
    "bad": ["boring", "good", "great"],
    "boring": ["bad", "great"],
    "plot": ["film", "films"],
    "film": ["plot", "films"],
    "films": ["film", "plot"],
}
STOP = {"the", "a", "and", "it", "was", "not", "very", "were"}


def candidates_of(word: str) -> list[str]:
    return [] if word.lower() in STOP else CANDIDATES.get(word.lower(), [])


@pytest.fixture(scope="module")
def target(trained_tiny_run):
    return load_target(str(trained_tiny_run))


def _test_examples(target):
    test = target.task.load().test
    return test, np.arange(len(test))


def test_device_tokens_equal_the_tokenised_string(tiny_model_dir):
    directory, _ = tiny_model_dir("bert", num_labels=2)
    tok = load_tokenizer(directory)
    texts = ["the film was good", "Bad films, boring plot!", "a good and great plot", "it was not very good"]
    items = prepare_examples(tok, [Example(t, 0) for t in texts], candidates_of, max_length=16, max_candidates=3)
    assert [len(ae.slot_words) for ae in items] == [2, 4, 3, 1]
    lay = make_layout(tok, items)
    build = jax.jit(jax.vmap(lambda row, c: build_tokens(row, c, 24, 16, tok.pad_token_id, tok.unk_token_id)))
    rng = np.random.default_rng(0)
    W = lay.slot_seg.shape[1]
    for trial in range(40):
        deleting = trial % 2 == 1  # substitution-only and deletion-only edits
        choice = np.full((len(items), W), ORIGINAL, np.int32)
        for n, ae in enumerate(items):
            for slot, cands in enumerate(ae.candidates):
                if rng.random() < 0.6:
                    choice[n, slot] = DELETE if deleting else rng.integers(len(cands))
        out = jax.tree.map(np.asarray, build(lay, jnp.asarray(choice)))
        for n, ae in enumerate(items):
            text = ae.perturbed_text(choice[n])
            for slot in np.flatnonzero(choice[n] == DELETE)[::-1]:
                s, e = ae.encoded.words[ae.slot_words[slot]]
                text = text[:s] + text[e:]
            expected = tok(text, truncation=True, max_length=16)["input_ids"]
            m = out["attention_mask"][n].sum()
            assert list(out["input_ids"][n][:m]) == expected, text
            assert (out["input_ids"][n][m:] == tok.pad_token_id).all()


def test_gradient_attack_flips_on_the_retokenised_string(target):
    test, indices = _test_examples(target)
    settings = AttackSettings(attack="gradient", synonyms="unused", n=len(test), budget=0.5, k=3)
    records, _ = attack_examples(target.victim, target.params, target.tokenizer, test, indices, candidates_of, settings, progress=False)
    by_index = {r["index"]: r for r in records}
    successes = [r for r in records if r["success"]]
    assert successes
    from jaxrobust.attacks.verify import string_probs

    perturbed = [dataclasses.replace(test[r["index"]], text=r["perturbed_text"]) for r in successes]
    probs = string_probs(target.victim, target.params, target.tokenizer, perturbed)
    assert (probs.argmax(-1) != [r["label"] for r in successes]).all()
    for r in records:
        assert r["words_changed"] <= max(1, int(np.ceil(0.5 * r["n_words"])))
        for _, old, new in r["substitutions"]:
            assert new.lower() in candidates_of(old)
    clean = np.mean([r["reason"] != "misclassified" for r in records])
    under_attack = np.mean([r["reason"] != "misclassified" and not r["success"] for r in records])
    assert clean > 0.8 and under_attack < clean - 0.5
    assert set(by_index) == set(int(i) for i in indices)


def test_batched_equals_one_at_a_time_and_compiles_once_per_bucket(target):
    test, _ = _test_examples(target)
    items = [ae for ae in prepare_examples(target.tokenizer, test, candidates_of, 16, 3) if ae.slot_words]
    group = engine.make_group(target.tokenizer, items, 0.5, 16, 3)
    run = lambda batch_size: engine.run_gradient_group(target.victim, target.params, group, 0.5, batch_size=batch_size, verify=2, max_iters=10)
    compiled = lambda: engine._probs_of._cache_size() + engine._rank._cache_size()
    before = compiled()
    batched = run(8)
    # One program per token-length step (16 / LENGTH_STEP of them) for each of the two functions;
    # batches of 8 rows only (the smallest batch size).
    assert compiled() - before <= 2 * (16 // engine.LENGTH_STEP)
    after = compiled()
    again = run(8)
    assert compiled() == after  # nothing new to compile on the second run
    single = run(1)
    assert any(o.choice.max() >= 0 for o in batched)  # something was substituted
    for x, y, z in zip(batched, again, single):
        np.testing.assert_array_equal(x.choice, y.choice)
        np.testing.assert_array_equal(x.choice, z.choice)
        assert x.queries == z.queries and x.gradients == z.gradients == 1


def test_sweep_over_budgets_and_runs_equals_separate_attacks(target):
    test, _ = _test_examples(target)
    budgets = [0.2, 0.5]
    result = sweep([target, target], budgets, candidates_of, n=len(test), k=3, verify_top=2, max_iters=10)
    acc = np.array(result["accuracy_under_attack"])
    np.testing.assert_array_equal(acc[0], acc[1])  # the same run twice, stacked
    assert acc[0, 1] <= acc[0, 0] <= result["clean_accuracy"][0]
    for b, budget in enumerate(budgets):
        settings = AttackSettings(attack="gradient", synonyms="unused", n=len(test), budget=budget, k=3, verify=2, max_iters=10)
        records, _ = attack_examples(target.victim, target.params, target.tokenizer, test, np.arange(len(test)), candidates_of, settings, progress=False)
        separate = np.mean([r["reason"] != "misclassified" and not r["success"] for r in records])
        assert acc[0, b] == pytest.approx(separate)


def test_text_without_attackable_words_is_skipped_not_crashed(target):
    examples = [Example("it was a", 1), Example("the and a !", 0)]
    settings = AttackSettings(attack="gradient", synonyms="unused", n=2, budget=0.5, k=3)
    records, _ = attack_examples(target.victim, target.params, target.tokenizer, examples, [0, 1], candidates_of, settings, progress=False)
    for r in records:
        assert r["skipped"] and r["substitutions"] == [] and not r["success"]
        assert r["reason"] in ("no attackable word", "misclassified")
    assert any(r["reason"] == "no attackable word" for r in records)


def test_report_names_tell_apart_settings_that_change_results():
    """The report folder is a cache key: two settings that attack differently never share a name."""
    base = {"genetic": dict(population=20, generations=10), "gradient": dict(verify=3, max_iters=5), "ascc": dict(ascc_steps=3)}
    for attack, search in base.items():
        settings = AttackSettings(attack=attack, n=200, **search)
        names = {settings.name, dataclasses.replace(settings, min_cos=0.9).name}
        names |= {dataclasses.replace(settings, **{field: value + 1}).name for field, value in search.items()}
        names |= {AttackSettings(attack=attack, n=200).name}  # the default search
        assert len(names) == len(search) + 3, names
        assert dataclasses.replace(settings, batch_size=7).name == settings.name  # batching changes nothing
