"""The gradient attack, the token layout it runs on, the string-level check and the sweep."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrobust.attacks import engine
from jaxrobust.attacks.constraints import Constraints, SimilarityFilter
from jaxrobust.attacks.layout import DELETE, ORIGINAL, build_tokens, make_layout, prepare_examples
from jaxrobust.attacks.run import AttackSettings, attack_examples, fit_to_split, load_target, load_validity_models, report_dir
from jaxrobust.attacks.sentence_encoder import SentenceEncoder
from jaxrobust.attacks.sweep import check_sweepable, parse_budgets, sweep
from jaxrobust.attacks.victim import split_model
from jaxrobust.data.tasks import Example
from jaxrobust.errors import JaxRobustError
from jaxrobust.models import load_classifier
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


@pytest.fixture(scope="module")
def other_target(other_tiny_run):
    return load_target(str(other_tiny_run))


def _test_examples(target):
    test = target.task.load().test
    return test, np.arange(len(test))


@pytest.mark.parametrize("family, max_length", [("bert", 16), ("bert", 7), ("roberta", 7), ("gpt2", 16), ("gpt2", 6), ("llama", 6), ("gemma", 6)])
def test_device_tokens_equal_the_tokenised_string(tiny_model_dir, tmp_path, family, max_length):
    """Tokens built on device from word choices equal the tokenizer's own tokens of the edited
    string, truncation included, for each family's tokenizer (WordPiece, byte-level BPE with and
    without special tokens, SentencePiece with and without a dummy prefix)."""
    import conftest
    from jaxrobust.data.conventions import conventions

    tok = load_tokenizer(tiny_model_dir("bert", num_labels=2)[0]) if family == "bert" else getattr(conftest, family)(tmp_path)
    conv = conventions(tok)
    texts = ["the film was good", "Bad films, boring plot!", "a good and great plot", "it was not very good"]
    items = prepare_examples(tok, [Example(t, 0) for t in texts], candidates_of, max_length=max_length, max_candidates=3)
    assert any(ae.slot_words for ae in items)
    if (family, max_length) == ("bert", 16):
        assert [len(ae.slot_words) for ae in items] == [2, 4, 3, 1]
    items = [ae for ae in items if ae.slot_words]
    lay = make_layout(tok, items)
    build = jax.jit(jax.vmap(lambda row, c: build_tokens(row, c, 24, max_length, conv.pad_id, conv.unk_id)))
    rng = np.random.default_rng(0)
    W = lay.slot_seg.shape[1]
    # A text the tokenizer cut keeps its cut: edits that shorten it would bring back words the
    # layout never saw (the string-level check re-tokenises those), so cut texts get only
    # substitutions of the same token count.
    cut = [len(tok(ae.text)["input_ids"]) > max_length for ae in items]
    pieces = lambda ae, slot: int((ae.encoded.token_words == ae.slot_words[slot]).sum())
    for trial in range(40):
        deleting = trial % 2 == 1  # substitution-only and deletion-only edits
        choice = np.full((len(items), W), ORIGINAL, np.int32)
        for n, ae in enumerate(items):
            for slot, cands in enumerate(ae.candidates):
                same = [c for c, ids in enumerate(ae.candidate_ids[slot]) if len(ids) == pieces(ae, slot)]
                if rng.random() < 0.6 and not cut[n]:
                    choice[n, slot] = DELETE if deleting else rng.integers(len(cands))
                elif rng.random() < 0.6 and cut[n] and same:
                    choice[n, slot] = rng.choice(same)
        out = jax.tree.map(np.asarray, build(lay, jnp.asarray(choice)))
        for n, ae in enumerate(items):
            text = ae.perturbed_text(choice[n])
            for slot in np.flatnonzero(choice[n] == DELETE)[::-1]:  # the word and the space before it
                s, e = ae.encoded.words[ae.slot_words[slot]]
                text = text[: s - 1 if s and text[s - 1].isspace() else s] + text[e:]
            expected = tok(text, truncation=True, max_length=max_length)["input_ids"]
            m = out["attention_mask"][n].sum()
            assert list(out["input_ids"][n][:m]) == expected, text
            assert (out["input_ids"][n][m:] == conv.pad_id).all()


@pytest.mark.assets  # the tagger's weights
def test_part_of_speech_constraint_drops_a_wrong_part_of_speech(tiny_model_dir):
    directory, _ = tiny_model_dir("bert", num_labels=2)
    tok = load_tokenizer(directory)
    offered = {"boring": ["dull", "tediously"], "film": ["movie", "quickly"]}
    examples = [Example("a very boring film", 0), Example("The film was good", 1)]
    loose, strict = (prepare_examples(tok, examples, lambda w: offered.get(w.lower(), []), 16, 3, same_pos=p) for p in (False, True))
    assert [ae.candidates for ae in loose] == [[offered["boring"], offered["film"]], [offered["film"]]]
    # In context: an adjective for "boring", a noun for "film"; the adverbs would break the sentence.
    assert [ae.candidates for ae in strict] == [[["dull"], ["movie"]], [["movie"]]]


def test_gradient_attack_flips_on_the_retokenised_string(target):
    test, indices = _test_examples(target)
    settings = AttackSettings(attack="gradient", synonyms="unused", n=len(test), budget=0.5, k=3, constraints="none")
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


def test_batched_equals_one_at_a_time(target):
    test, _ = _test_examples(target)
    items = [ae for ae in prepare_examples(target.tokenizer, test, candidates_of, 16, 3) if ae.slot_words]
    group = engine.make_group(target.tokenizer, items, 0.5, 16, 3)
    run = lambda batch_size: engine.run_gradient_group(target.victim, target.params, group, 0.5, batch_size=batch_size, verify=2, max_iters=10)
    batched, again, single = run(8), run(8), run(1)
    assert any(o.choice.max() >= 0 for o in batched)  # something was substituted
    for x, y, z in zip(batched, again, single):
        np.testing.assert_array_equal(x.choice, y.choice)
        np.testing.assert_array_equal(x.choice, z.choice)
        assert x.queries == z.queries and x.gradients == z.gradients == 1


def test_the_string_check_rides_in_the_search_batches(target, tiny_model_dir, monkeypatch):
    """Final texts settled during the gradient search are run, tokenised from their strings, in the
    free rows of the search's own batches -- the victim's, and the similarity filter's for the texts
    the re-check compares: same search, same records as a separate final pass, and the final pass
    runs only the texts that found no free row."""
    from jaxrobust.attacks import verify

    test, _ = _test_examples(target)
    items = [ae for ae in prepare_examples(target.tokenizer, test, candidates_of, 16, 3) if ae.slot_words]
    group = engine.make_group(target.tokenizer, items, 0.5, 16, 3)
    directory = str(tiny_model_dir("bert", num_labels=2)[0])
    encoder, rules = SentenceEncoder(directory), Constraints(similarity=0.0)
    allowed = SimilarityFilter(encoder, group.members, rules, group.layout.cand_len.shape[1:]).allowed
    stored, store = [], encoder.store
    monkeypatch.setattr(encoder, "store", lambda texts, rows: stored.extend(texts) or store(texts, rows))
    finals = verify.FinalTexts(target.tokenizer, group.members, 16, target.victim.pad_id, rules, encoder)
    run = lambda **kw: engine.run_gradient_group(target.victim, target.params, group, 0.5, batch_size=8, verify=2, max_iters=10, allowed=allowed, **kw)
    riding, plain = run(finals=finals), run()
    assert stored  # rode in the filter's batches; each row is that text's own embedding
    np.testing.assert_allclose(encoder.embed(stored), SentenceEncoder(directory).embed(stored), atol=1e-6)
    for x, y in zip(riding, plain):
        np.testing.assert_array_equal(x.choice, y.choice)
    changed = {verify.final_key(i, o.choice) for i, o in enumerate(plain) if (o.choice >= 0).any()}
    assert finals.probs and set(finals.probs) <= changed and len(finals.probs) < len(changed)
    for (i, _), p in finals.probs.items():  # each rider's probabilities are its own string's
        final = group.members[i].perturbed_example(plain[i].choice)
        np.testing.assert_allclose(p, verify.string_probs(target.victim, target.params, target.tokenizer, [final])[0], atol=1e-6)

    rerun = []
    original = verify.string_probs
    monkeypatch.setattr(verify, "string_probs", lambda *a, **kw: rerun.append(len(a[3])) or original(*a, **kw))
    check = lambda **kw: verify.check(target.victim, target.params, target.tokenizer, group.members, plain, 0.5, rules=rules, encoder=encoder, **kw)
    with_riders, separate = check(probs=finals.probs), check()
    assert rerun == [len(changed) - len(finals.probs), len(changed)]
    for a, b in zip(with_riders, separate):
        assert a["success"] == b["success"] and a["perturbed_text"] == b["perturbed_text"]
        np.testing.assert_allclose(a["perturbed_probs"], b["perturbed_probs"], atol=1e-6)


def test_one_search_records_every_budget_as_separate_searches(target):
    """The search at the largest budget records, per budget, exactly the outcome (choice and
    queries) of a separate search at that budget, example by example."""
    test, _ = _test_examples(target)
    items = [ae for ae in prepare_examples(target.tokenizer, test, candidates_of, 16, 3) if ae.slot_words]
    budgets = [0.1, 0.3, 0.5]
    group = engine.make_group(target.tokenizer, items, max(budgets), 16, 3)
    kwargs = dict(batch_size=8, verify=2, max_iters=10)
    shared = engine.run_gradient_budgets(target.victim, target.params, group, budgets, **kwargs)
    changed = []
    for budget, outcomes in zip(budgets, shared):
        alone = engine.run_gradient_group(target.victim, target.params, group, budget, **kwargs)
        for ae, x, y in zip(group.members, outcomes, alone):
            np.testing.assert_array_equal(x.choice, y.choice)
            assert x.queries == y.queries and x.skipped == y.skipped
            assert (x.choice >= 0).sum() <= ae.max_changes(budget)
        changed.append(sum(int((o.choice >= 0).sum()) for o in outcomes))
    assert changed[0] < changed[-1]  # the budgets did stop searches at different points


@pytest.mark.parametrize("attack", ["gradient", "textfooler"])
def test_query_budget_on_the_model(target, attack):
    """With ``--query-budget``, no example spends more model evaluations than the budget, an example
    that ran out spent exactly the budget, and a success is one the search without a budget also finds
    (within the budget when it needs no more queries): an example whose search needs more fails."""
    test, indices = _test_examples(target)
    run = lambda q: attack_examples(target.victim, target.params, target.tokenizer, test, indices, candidates_of,
                                    AttackSettings(attack=attack, n=len(test), budget=0.5, k=3, constraints="none", query_budget=q),
                                    progress=False)[0]
    free = run(None)
    assert any(r["success"] for r in free)
    stopped = 0
    for q in (2, 3, 5):
        for b, u in zip(run(q), free):
            assert b["queries"] <= q and b["original_text"] == u["original_text"]
            assert (b["queries"] == q) >= b["query_budget_exhausted"]
            assert u["success"] >= b["success"]  # nothing found that the free search does not find
            if u["success"] and u["queries"] <= q:
                assert b["success"] and b["queries"] == u["queries"] and b["perturbed_text"] == u["perturbed_text"]
            stopped += u["success"] and not b["success"]
    assert stopped > 0  # the budget did turn successes into failures


def test_bad_query_budget():
    with pytest.raises(JaxRobustError, match="--query-budget must be at least 1"):
        AttackSettings(attack="gradient", query_budget=0)
    with pytest.raises(JaxRobustError, match="ascc attack searches by gradient steps"):
        AttackSettings(attack="ascc", query_budget=80)
    assert AttackSettings(attack="textfooler", query_budget=80).name.endswith("-q80-b0.2-n500-s0")


MODEL_PROGRAMS = {"outputs", "loss_grad"}  # keyed by (rows, length) only
LAYOUT_PROGRAMS = {"build_batch", "_window_tokens", "_ranking_of"}  # keyed by the layout's shape


def _compiled(caplog, run) -> list[str]:
    """Names of the functions XLA compiled while ``run()`` ran."""
    import re

    caplog.clear()
    with caplog.at_level("WARNING"), jax.log_compiles():
        run()
    return [m.group(1) for r in caplog.records if (m := re.match(r"Finished XLA compilation of jit\((\w+)\)", r.getMessage()))]


def test_a_victim_and_an_encoder_of_one_architecture_share_the_forward_program(target, tiny_model_dir, caplog):
    """A restored run and a sentence encoder read from safetensors, both tiny BERTs: the forward
    program compiled for one serves the other, and each still computes its own outputs."""
    from jaxrobust.attacks.sentence_encoder import embed_tokens
    from jaxrobust.attacks.victim import mean_pool, predict, unit_rows

    encoder = SentenceEncoder(str(tiny_model_dir("bert", num_labels=2)[0]))
    tokens = {k: np.asarray(v, np.int32) for k, v in encoder.tokenizer(
        ["good film", "the plot was bad"] * 3 + ["boring"], padding="max_length", max_length=16).items()}  # 7 rows: no other test's
    assert _compiled(caplog, lambda: predict(target.victim, target.params, tokens)) == ["outputs"]
    got = []
    assert _compiled(caplog, lambda: got.append(np.asarray(embed_tokens(encoder.static, encoder.params, tokens)))) == []
    model = load_classifier(str(tiny_model_dir("bert", num_labels=2)[0]), tokenizer=False).model
    hidden = model(jnp.asarray(tokens["input_ids"]), jnp.asarray(tokens["attention_mask"])).last_hidden_state
    np.testing.assert_allclose(got[0], unit_rows(mean_pool(hidden, jnp.asarray(tokens["attention_mask"]))), atol=1e-6)


def test_an_attack_compiles_a_few_programs_whatever_its_texts(target, tiny_model_dir, caplog):
    """Short and long texts, words with one candidate and words with six: the whole attack (search,
    similarity constraint, string-level check) compiles each model program at most once per length
    bucket and each layout program once, and nothing else -- no program per batch, iteration or
    text. A second attack on other texts, of other layout shapes, compiles no model program."""
    from jaxrobust.attacks import shapes

    victim, params = split_model(target.classifier.model, target.tokenizer.pad_token_id, target.tokenizer.unk_token_id, 64)
    dense = ["good", "great", "bad", "boring", "plot", "film", "films"]
    offered = lambda w: [] if w.lower() in STOP else ([c for c in dense if c != w.lower()] if w.lower() in ("good", "bad") else candidates_of(w))
    long = " and ".join(["the film was very good", "the plot was great", "it was good"] * 3)  # > 32 tokens
    texts = [("good", 1), ("bad films", 0), ("the plot was boring and the film was bad", 0), (long, 1), (long.replace("good", "bad"), 0)]
    examples = [Example(t, label) for t, label in texts]
    directory = str(tiny_model_dir("bert", num_labels=2)[0])
    # Five rows per batch, a size no other test uses: every program this attack needs is compiled here.
    settings = AttackSettings(attack="gradient", synonyms="unused", n=len(examples), budget=0.5, k=6, batch_size=5,
                              encoder=directory, similarity=0.0)
    attack = lambda ex: attack_examples(victim, params, target.tokenizer, ex, np.arange(len(ex)), offered, settings, progress=False)
    load_validity_models(settings)  # loading the encoder compiles its initialisation: before the attack, as run_attack does
    names = _compiled(caplog, lambda: attack(examples))
    assert set(names) <= MODEL_PROGRAMS | LAYOUT_PROGRAMS, names
    buckets = {"outputs": len(shapes.length_ladder(64)), "loss_grad": len(shapes.length_ladder(64, coarse=True))}
    for name in MODEL_PROGRAMS:
        assert 2 <= names.count(name) <= buckets[name], (name, names)  # the texts span several buckets, each compiled once
    for name in LAYOUT_PROGRAMS:
        assert names.count(name) == 1, (name, names)
    others = [Example(t.replace("film", "plot"), label) for t, label in texts[1:]]
    again = _compiled(caplog, lambda: attack(others))
    assert not set(again) & MODEL_PROGRAMS, again


def test_the_warmup_compiles_the_programs_the_attack_then_uses(target, caplog):
    """Run in the background before the attack, the warm-up leaves the search no model program to
    compile, and the attack's results are those of an attack without it."""
    from jaxrobust.attacks import warmup
    from jaxrobust.data.encoding import encode

    test, indices = _test_examples(target)
    # Three rows per batch, a size no other test uses: nothing is compiled for it before this test.
    settings = AttackSettings(attack="gradient", synonyms="unused", n=len(test), budget=0.5, k=3, batch_size=3, constraints="none")
    attack = lambda: attack_examples(target.victim, target.params, target.tokenizer, test, indices, candidates_of, settings, progress=False)[0]
    lengths = [e.length for e in encode(target.tokenizer, test, target.victim.max_length)]
    ahead = warmup.start_victim(target.victim, target.params, lengths, 3, gradient=True)
    ahead.join()
    assert ahead.error is None
    records = []
    names = _compiled(caplog, lambda: records.append(attack()))
    assert not set(names) & MODEL_PROGRAMS, names
    assert set(names) & LAYOUT_PROGRAMS  # the check sees this attack's compilations
    other = dataclasses.replace(settings, batch_size=8)
    again = attack_examples(target.victim, target.params, target.tokenizer, test, indices, candidates_of, other, progress=False)[0]
    assert [r["perturbed_text"] for r in records[0]] == [r["perturbed_text"] for r in again]


def _median_swap_similarity(target, test, encoder) -> float:
    """The median whole-text similarity, under ``encoder``, of the single substitutions of ``test``:
    a threshold that half of the trials fail."""
    items = [ae for ae in prepare_examples(target.tokenizer, test, candidates_of, target.victim.max_length, 3) if ae.slot_words]
    group = engine.make_group(target.tokenizer, items, 0.5, target.victim.max_length, 3)
    check = SimilarityFilter(encoder, group.members, Constraints(similarity=0.5), group.layout.cand_len.shape[1:])
    N, W, K = group.layout.cand_len.shape
    member, slot, cand = np.nonzero(group.layout.cand_valid & group.layout.slot_valid[..., None])
    choice = np.full((len(member), W), ORIGINAL, np.int32)
    choice[np.arange(len(member)), slot] = cand
    return float(np.median(check.scores(member, choice)))


def test_sweep_over_budgets_and_runs_equals_separate_attacks(target, other_target, tiny_model_dir):
    """Two runs that are attacked differently: each row of the sweep must be that run's own attack
    (a sweep that gave every run the first run's parameters would fail here: the weaker run first).
    Both apply A2T's constraints, the similarity (under the tiny encoder) at a threshold that half of
    the single substitutions fail: the similarity filter the runs share rejects what each attack's
    own does."""
    test, _ = _test_examples(target)
    budgets = [0.2, 0.5]
    targets = [other_target, target]
    directory = str(tiny_model_dir("bert", num_labels=2)[0])
    encoder = SentenceEncoder(directory)
    threshold = _median_swap_similarity(target, test, encoder)
    rules = Constraints(pos=True, similarity=threshold)
    result = sweep(targets, budgets, candidates_of, n=len(test), k=3, verify_top=2, max_iters=10, rules=rules, encoder=encoder)
    free = sweep(targets, budgets, candidates_of, n=len(test), k=3, verify_top=2, max_iters=10, rules=Constraints(pos=True))
    acc = np.array(result["accuracy_under_attack"])
    assert result["runs"] == [t.source for t in targets] and result["constraints"] == rules.tag
    assert (acc >= np.array(free["accuracy_under_attack"])).all() and (acc > np.array(free["accuracy_under_attack"])).any()
    separate = np.zeros_like(acc)
    for r, t in enumerate(targets):
        for b, budget in enumerate(budgets):
            settings = AttackSettings(attack="gradient", synonyms="unused", n=len(test), budget=budget, k=3, verify=2, max_iters=10,
                                      encoder=directory, similarity=threshold)
            records, _ = attack_examples(t.victim, t.params, t.tokenizer, test, np.arange(len(test)), candidates_of, settings, progress=False)
            separate[r, b] = np.mean([r_["reason"] != "misclassified" and not r_["success"] for r_ in records])
            assert result["clean_accuracy"][r] == pytest.approx(np.mean([r_["reason"] != "misclassified" for r_ in records]))
        assert acc[r, 1] <= acc[r, 0] <= result["clean_accuracy"][r]
    np.testing.assert_allclose(acc, separate)


def test_sweep_refuses_runs_of_another_task_or_architecture(target, tiny_model_dir):
    other_task = dataclasses.replace(target.task, name=target.task.name + "-other")
    with pytest.raises(JaxRobustError, match="cannot sweep runs of different tasks"):
        check_sweepable([target, dataclasses.replace(target, task=other_task, source="other")])
    directory, _ = tiny_model_dir("roberta", num_labels=2)
    loaded = load_classifier(str(directory), 2)
    victim, params = split_model(loaded.model, loaded.tokenizer.pad_token_id, loaded.tokenizer.unk_token_id, 16)
    roberta = dataclasses.replace(target, victim=victim, params=params, source="roberta")
    with pytest.raises(JaxRobustError, match="differ in architecture"):
        check_sweepable([target, roberta])


@pytest.mark.parametrize("text", ["", ",", "0.1,abc", "1.5", "0", "-0.1,0.2", "nan"])
def test_bad_budget_lists_are_refused(text):
    with pytest.raises(JaxRobustError, match="--budgets must"):
        parse_budgets(text)
    assert parse_budgets("0.05, 0.1,1") == [0.05, 0.1, 1.0]


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
        names |= {dataclasses.replace(settings, constraints="pos").name}  # other constraints than the recipe's
        assert len(names) == len(search) + 4, names
        assert dataclasses.replace(settings, batch_size=7).name == settings.name  # batching changes nothing


def test_a_candidate_file_is_named_by_its_content_not_its_path(tmp_path):
    """The same neighbour table passed by two paths (another checkout) finds the same reports; the
    file changed in place does not."""
    table = {"good": ["fine", "decent"], "film": ["movie"]}
    here, there = tmp_path / "a" / "neighbours.json", tmp_path / "b" / "neighbours.json"
    for path in (here, there):
        path.parent.mkdir()
        path.write_text(json.dumps(table))
    name = lambda path: AttackSettings(attack="gradient", synonyms=f"counterfitted:{path}").name
    assert name(here) == name(there) and "neighbours" in name(here) and str(tmp_path.name) not in name(here)
    here.write_text(json.dumps({**table, "bad": ["poor"]}))
    assert name(here) != name(there)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(batch_size=0), "--batch-size must be at least 1"),
        (dict(attack="genetic", population=0), "--population must be at least 1"),
        (dict(attack="genetic", generations=0), "--generations must be at least 1"),
        (dict(attack="ascc", ascc_steps=0), "--ascc-steps must be at least 1"),
        (dict(k=0), "--k must be at least 1"),
        (dict(k=-2), "--k must be at least 1"),
        (dict(min_cos=2.0), "--min-cos must be a cosine in [-1, 1]"),
        (dict(min_cos=-1.5), "--min-cos must be a cosine in [-1, 1]"),
        (dict(n=0), "--n must be at least 1"),
        (dict(n=-3), "--n must be at least 1"),
        (dict(budget=0.0), "budget must be in (0, 1]"),
        (dict(budget=1.5), "budget must be in (0, 1]"),
        (dict(budget=-0.1), "budget must be in (0, 1]"),
        (dict(attack="hotflip"), "unknown attack 'hotflip'"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(JaxRobustError) as e:
        AttackSettings(**settings)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_k_defaults_to_the_recipe_only_when_not_given():
    assert AttackSettings(attack="gradient").k == 20 and AttackSettings(attack="textfooler").k == 50
    assert AttackSettings(attack="gradient", k=1).k == 1
    assert AttackSettings(attack="gradient", min_cos=-1.0).min_cos == -1.0


def test_report_is_named_after_the_examples_attacked(tmp_path, capsys):
    settings = AttackSettings(attack="gradient", n=500)
    fitted = fit_to_split(settings, 24)
    assert fitted.n == 24 and "larger than the test split" in capsys.readouterr().out
    assert report_dir(tmp_path, fitted).name.endswith("-n24-s0")
    assert fit_to_split(fitted, 24) is fitted and capsys.readouterr().out == ""  # no second notice
    # The study asks for n <= the split: its report names stay as they were.
    small = AttackSettings(attack="gradient", n=8)
    assert report_dir(tmp_path, fit_to_split(small, 24)) == report_dir(tmp_path, small)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(workdir="run", model="m", task="t"), "not both"),
        (dict(workdir="run", task="t"), "go with --model"),
        (dict(workdir="run", text_field="sentence"), "go with --model"),
        (dict(model="m"), "--model needs --task"),
        (dict(), "give --workdir RUN"),
    ],
)
def test_target_flags_that_would_be_ignored_are_refused(kwargs, message):
    with pytest.raises(JaxRobustError, match=message):
        load_target(**kwargs)


def test_progress_shows_the_success_rate_only_once_attacked_examples_are_checked():
    """Texts without an attackable word come first; the bar must not show their 0 % as the attack's
    success rate for the whole search."""
    from jaxrobust.attacks.run import _collect

    class Bar:
        postfix = None

        def update(self, n):
            pass

        def set_postfix(self, **kw):
            self.postfix = kw

    bar, into = Bar(), {}
    idle = dict(index=0, skipped=True, reason="no attackable word", success=False)
    _collect(into, [idle], bar)
    assert bar.postfix is None
    _collect(into, [dict(index=1, skipped=False, reason="", success=True)], bar, count=False)
    assert bar.postfix == {"success": "50.0%"}
