"""Black-box attacks (TextFooler-style, PWWS, genetic) and the ASCC attack.

Against a tiny sentiment classifier trained here: every scorer call is recorded, so the tests check
what the attacks *evaluated* (budget, candidates, query counts, early stopping), and the returned
texts are re-tokenised and re-classified with the model itself, as the string-level verification
does. Against an additive toy victim (each substitution moves the true-class logit margin by a fixed
amount): the greedy searches must reproduce their definitions exactly, and the budget must bind.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxrobust.attacks import engine
from jaxrobust.attacks.ascc_attack import ascc_group
from jaxrobust.attacks.blackbox import ATTACKS
from jaxrobust.attacks.layout import DELETE, ORIGINAL, UNK, prepare_examples
from jaxrobust.attacks.victim import split_model
from jaxrobust.data.tasks import Example
from jaxrobust.models import load_classifier
from jaxrobust.models.loading import load_tokenizer

MAX_LENGTH = 16
# A dozen sentences the tiny BERT is fitted to (full batch) and attacked on: few, so every attack is quick.
POSITIVE = ["the film was good", "a very good plot", "it was great", "great and good", "a great film", "very great"]
NEGATIVE = ["the film was bad", "a very bad plot", "it was boring", "boring and bad", "bad bad", "very boring"]
NUM_CANDIDATES = 2
BUDGET = 0.3
SWAPS = {
    "good": ["bad", "boring"],
    "great": ["bad"],
    "bad": ["good", "great"],
    "boring": ["great", "good"],
    "film": ["plot"],
    "plot": ["film"],
}
# The one special code each attack may put in a query: TextFooler ranks words by deleting each,
# PWWS by replacing each with UNK; the others only substitute candidates.
PROBE_CODE = {"textfooler": DELETE, "pwws": UNK, "bertattack": UNK}
FAST = {"genetic": dict(population=12, generations=6)}  # small population: the test stays quick
# The attacks run on the trained tiny model; ASCC needs the model's gradients, not only its scores.
MODEL_ATTACKS = {**ATTACKS, "ascc": functools.partial(ascc_group, steps=10, lr=1.0, entropy_weight=1.0)}

# Sentences beyond the training set, longer ones so the budget allows several changes, and two
# training sentences with the wrong label (misclassified: never attacked).
EXTRA = [
    ("the film was good and the plot was great", 1),
    ("it was a good film and a great plot", 1),
    ("the plot was boring and the film was bad", 0),
    ("a bad film and a boring plot", 0),
    ("the film was great", 1),
    ("the plot was bad", 0),
    ("the film was good", 0),
    ("very boring", 1),
]


def _examples() -> list[Example]:
    rows = [(t, 1) for t in POSITIVE] + [(t, 0) for t in NEGATIVE] + EXTRA
    return [Example(text, label) for text, label in rows]


@pytest.fixture(scope="module")
def trained(tiny_model_dir):
    """``(model, tokenizer)``: the tiny BERT fitted to POSITIVE (1) / NEGATIVE (0), full batch."""
    directory, _ = tiny_model_dir("bert", num_labels=2)
    loaded = load_classifier(str(directory), 2)
    model, tok = loaded.model, loaded.tokenizer  # eval mode: no dropout, a deterministic fit
    enc = tok(POSITIVE + NEGATIVE, padding="max_length", max_length=8, return_tensors="np")
    ids, mask = jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"])
    labels = jnp.asarray([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss_of = lambda m: optax.softmax_cross_entropy_with_integer_labels(m(ids, mask).logits, labels).mean()
        loss, grads = nnx.value_and_grad(loss_of)(model)
        optimizer.update(model, grads)
        return loss

    for _ in range(40):
        loss = step(model, optimizer)
    assert float(loss) < 0.05
    return model, tok


def _predict(model, tok, texts: list[str]) -> np.ndarray:
    """Labels the model gives the strings, tokenised afresh."""
    enc = tok(texts, padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="np")
    out = model(jnp.asarray(enc["input_ids"]), jnp.asarray(enc["attention_mask"]), jnp.asarray(enc["token_type_ids"]))
    return np.asarray(out.logits).argmax(-1)


class RecordingScorer(engine.Scorer):
    """A scorer that keeps every (member, choice) row it evaluates, with the index of its call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (call, member, choice, probs)

    def __call__(self, member, choice):
        probs = super().__call__(member, choice)
        call = len({r[0] for r in self.rows})
        self.rows += [(call, int(m), np.array(c), p) for m, c, p in zip(member, choice, probs)]
        return probs


def _attack(trained, name, candidates_of=SWAPS.get, budget=BUDGET, chunk=64, **kwargs):
    """Attack the attackable examples: ``[(AttackExample, Outcome, scorer rows of that member)]``."""
    model, tok = trained
    victim, params = split_model(model, tok.pad_token_id, tok.unk_token_id, MAX_LENGTH)
    candidates = lambda w: candidates_of(w.lower()) or []
    prepared = [a for a in prepare_examples(tok, _examples(), candidates, MAX_LENGTH, NUM_CANDIDATES) if a.slot_words]
    group = engine.make_group(tok, prepared, budget, MAX_LENGTH, NUM_CANDIDATES)
    scorer = RecordingScorer(victim, params, group, chunk=chunk)
    done = []
    outcomes = MODEL_ATTACKS[name](scorer, budget, on_done=done.append, **{**FAST.get(name, {}), **kwargs})
    assert len(outcomes) == len(group.members) == sum(done)  # the progress callback sees every example once
    return [(ae, o, [r for r in scorer.rows if r[1] == i]) for i, (ae, o) in enumerate(zip(group.members, outcomes))]


@pytest.mark.parametrize("name", sorted(MODEL_ATTACKS))
def test_attack_flips_within_budget_and_candidates(trained, name):
    model, tok = trained
    results = _attack(trained, name)
    texts = [ae.text for ae, _, _ in results]
    labels = np.array([ae.example.label for ae, _, _ in results])
    clean = _predict(model, tok, texts) == labels
    adversarial = [ae.perturbed_text(o.choice) for ae, o, _ in results]
    robust = _predict(model, tok, adversarial) == labels

    # Skipped examples are exactly the misclassified ones, and they cost only the clean pass.
    assert [o.skipped for _, o, _ in results] == list(~clean)
    assert 0 < (~clean).sum() and all(o.queries == 1 and (o.choice == ORIGINAL).all() for _, o, _ in results if o.skipped)
    # The attack works: most correctly classified examples are flipped, verified on strings.
    assert clean.mean() > 0.7 and robust.mean() < 0.5 * clean.mean()

    for (ae, outcome, rows), flipped in zip(results, ~robust & clean):
        limit = ae.max_changes(BUDGET)
        n_slots = len(ae.slot_words)
        assert outcome.queries == len(rows)  # every forward pass counted, nothing else
        for choice in [outcome.choice] + [c for _, _, c, _ in rows]:
            assert (choice[n_slots:] == ORIGINAL).all()  # padding slots untouched
            assert (choice != ORIGINAL).sum() <= limit
            for slot, c in enumerate(choice[:n_slots]):
                if c >= 0:
                    assert c < len(ae.candidates[slot])  # a real candidate, never a padding one
                else:  # the original word, or the attack's own probe code, alone in its text
                    assert c == ORIGINAL or (c == PROBE_CODE.get(name) and (choice != ORIGINAL).sum() == 1), (slot, c)
        assert all(c >= ORIGINAL for c in outcome.choice)  # no DELETE / UNK in a result
        if outcome.skipped:
            continue
        # Early stop: an example ends in the call where one of its texts first flips the prediction,
        # and that flip is what the attack returns (verified on the re-tokenised string).
        substitutions = [(call, p) for call, _, c, p in rows if (c >= ORIGINAL).all()]
        flip_calls = [call for call, p in substitutions if p.argmax() != ae.example.label]
        assert flipped == bool(flip_calls)
        if flip_calls:
            assert max(call for call, _, _, _ in rows) == min(flip_calls)


@pytest.mark.parametrize("name", sorted(MODEL_ATTACKS))
def test_batch_size_does_not_change_results(trained, name):
    small = _attack(trained, name, chunk=4)
    large = _attack(trained, name, chunk=64)
    for (_, a, _), (_, b, _) in zip(small, large):
        np.testing.assert_array_equal(a.choice, b.choice)
        assert a.queries == b.queries and a.skipped == b.skipped


@pytest.mark.parametrize("name", ["pwws", "textfooler"])
def test_greedy_attacks_change_a_slot_at_most_once(trained, name):
    for ae, _, rows in _attack(trained, name):
        # The search calls (probe calls with DELETE / UNK rows left out), in order: once a slot is
        # tried, every later text holds one and the same value there (kept candidate or original).
        probes = {call for call, _, c, _ in rows if (c < ORIGINAL).any()}
        calls = sorted({call for call, _, _, _ in rows} - probes)
        for slot in range(len(ae.slot_words)):
            values = [{int(c[slot]) for call, _, c, _ in rows if call == k} for k in calls]
            tried = [i for i, v in enumerate(values) if v != {ORIGINAL}]
            if tried:
                after = values[tried[0] + 1 :]
                assert all(len(v) == 1 for v in after) and len({min(v) for v in after}) <= 1


def test_genetic_is_seeded(trained):
    first = _attack(trained, "genetic", seed=3)
    again = _attack(trained, "genetic", seed=3)
    for (_, a, ra), (_, b, rb) in zip(first, again):
        np.testing.assert_array_equal(a.choice, b.choice)
        assert a.queries == b.queries
        assert [c.tolist() for _, _, c, _ in ra] == [c.tolist() for _, _, c, _ in rb]
    other = _attack(trained, "genetic", seed=4)  # the seed is what drives the search
    assert any([c.tolist() for _, _, c, _ in ra] != [c.tolist() for _, _, c, _ in rb] for (_, _, ra), (_, _, rb) in zip(first, other))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_no_improving_candidate_ends_cleanly(trained, name):
    # Each word's only candidate is the word itself: nothing can lower the true-class probability.
    model, tok = trained
    results = _attack(trained, name, candidates_of=lambda w: [w] if w in SWAPS else [])
    attacked = [(ae, o) for ae, o, _ in results if not o.skipped]
    assert attacked
    for ae, outcome in attacked:
        assert ae.perturbed_text(outcome.choice) == ae.text
        assert (outcome.choice[len(ae.slot_words) :] == ORIGINAL).all()
        assert outcome.queries > 1
    texts = [ae.perturbed_text(o.choice) for ae, o in attacked]
    assert (_predict(model, tok, texts) == [ae.example.label for ae, _ in attacked]).all()


# --- An additive toy victim: exact expectations for the search rules --------------------------------


class AdditiveScorer(engine.Scorer):
    """Two classes; a text's true-class logit margin is ``base − Σ`` the effect of each changed slot
    (``effect [N, W, K]`` for candidates, ``delete``/``unk [N, W]``), p_true = sigmoid(margin).
    Every row it scores is kept in ``seen`` and checked: only the slot's own candidates. The query
    budget is :class:`engine.Scorer`'s own."""

    def __init__(self, group, seed, allowed=None, query_budget=None):
        rng = np.random.default_rng(seed)
        N, W, K = group.layout.cand_len.shape
        self.group, self.chunk, self._allowed = group, 64, allowed
        self.queries, self.query_budget, self.exhausted, self.classes = np.zeros(N, np.int64), query_budget, np.zeros(N, bool), 2
        self.base = rng.uniform(0.5, 3.0, N)
        self.effect = rng.uniform(-1.0, 1.0, (N, W, K))  # some candidates raise p_true: never kept
        self.delete, self.unk = rng.uniform(-1.0, 1.0, (2, N, W))
        self.seen = []

    def margin(self, member, choice):
        """``member [R]``, ``choice [R, W]`` -> ``[R]`` true-class logit margins."""
        slots = np.arange(choice.shape[1])
        moved = np.where(choice >= 0, self.effect[member[:, None], slots, np.maximum(choice, 0)], 0)
        moved += np.where(choice == DELETE, self.delete[member], 0) + np.where(choice == UNK, self.unk[member], 0)
        return self.base[member] - moved.sum(1)

    def _evaluate(self, member, choice):  # behind Scorer.__call__'s query budget
        member, choice = np.asarray(member), np.asarray(choice)
        self.seen += list(zip(member, choice))
        lay = self.group.layout
        cand_ok = lay.cand_len[member[:, None], np.arange(choice.shape[1]), np.maximum(choice, 0)] > 0
        assert ((choice == ORIGINAL) | ((choice >= 0) & cand_ok) | ((choice < ORIGINAL) & lay.slot_valid[member])).all()
        p_true = 1 / (1 + np.exp(-self.margin(member, choice)))
        np.add.at(self.queries, member, 1)
        probs = np.stack([1 - p_true, p_true], 1)
        return np.where(lay.labels[member, None] == 1, probs, probs[:, ::-1])


TOY_WORDS = ["film", "plot", "good", "bad", "great", "boring"]


@pytest.fixture(scope="module")
def toy_group(tiny_model_dir):
    """A group of random sentences over the tiny vocabulary, 3 candidates per content word."""
    directory, _ = tiny_model_dir("bert", num_labels=2)
    tok = load_tokenizer(directory)
    rng = np.random.default_rng(0)
    vocab = ["the", "was", "very", "a", "and"] + TOY_WORDS
    texts = [" ".join(rng.choice(vocab, rng.integers(3, 13))) for _ in range(40)]
    examples = [Example(t, int(rng.integers(2))) for t in texts]
    candidates_of = lambda w: [c for c in TOY_WORDS if c != w][:3] if w in TOY_WORDS else []
    prepared = [a for a in prepare_examples(tok, examples, candidates_of, 32, 3) if a.slot_words]
    return engine.make_group(tok, prepared, 0.2, 32, 3)


def _reference_greedy(scorer, i, order, limit):
    """The greedy search on member ``i`` of the additive victim, written out: slots in ``order``,
    each slot's best candidate kept if it lowers p_true; stop when flipped or at the budget."""
    W = scorer.effect.shape[1]
    n_cand = scorer.group.layout.cand_len[i].astype(bool).sum(1)
    choice, margin = np.full(W, ORIGINAL), scorer.base[i]
    for slot in order:
        if margin < 0 or (choice >= 0).sum() == limit:
            break
        k = scorer.effect[i, slot, : n_cand[slot]].argmax()
        if scorer.effect[i, slot, k] > 0:
            choice[slot], margin = k, margin - scorer.effect[i, slot, k]
    return choice


def _expected(name, scorer, i, budget):
    ae = scorer.group.members[i]
    n, lay = len(ae.slot_words), scorer.group.layout
    valid = lay.cand_len[i, :n] > 0  # [n, K]
    sigmoid = lambda m: 1 / (1 + np.exp(-m))
    best_effect = np.where(valid, scorer.effect[i, :n], -np.inf).max(1)
    if name in ("textfooler", "bertattack"):  # importance by deletion, or by the unknown token
        probe = scorer.delete if name == "textfooler" else scorer.unk
        importance = sigmoid(scorer.base[i]) - sigmoid(scorer.base[i] - probe[i, :n])
        return _reference_greedy(scorer, i, np.argsort(-importance, kind="stable"), ae.max_changes(budget))
    if (scorer.base[i] - best_effect < 0).any():  # PWWS: a clean-text swap flips already
        choice = np.full(scorer.effect.shape[1], ORIGINAL)
        slot = best_effect.argmax()
        choice[slot] = np.where(valid[slot], scorer.effect[i, slot, : valid.shape[1]], -np.inf).argmax()
        return choice
    saliency = sigmoid(scorer.base[i]) - sigmoid(scorer.base[i] - scorer.unk[i, :n])
    weight = np.exp(saliency) / np.exp(saliency).sum()
    score = weight * (sigmoid(scorer.base[i]) - sigmoid(scorer.base[i] - best_effect))
    return _reference_greedy(scorer, i, np.argsort(-score, kind="stable"), ae.max_changes(budget))


@pytest.mark.parametrize("name", ["pwws", "textfooler", "bertattack"])
def test_greedy_search_follows_its_definition(toy_group, name):
    budget = 0.2
    outcomes = []
    group = toy_group
    for seed in range(3):  # three draws of the victim's effects
        scorer = AdditiveScorer(group, seed)
        for i, outcome in enumerate(ATTACKS[name](scorer, budget)):
            assert not outcome.skipped
            np.testing.assert_array_equal(outcome.choice, _expected(name, scorer, i, budget))
            outcomes.append((group.members[i], outcome, scorer.margin(np.array([i]), outcome.choice[None])[0]))
    # Both regimes occur: flipped examples, and failures that spent the whole budget.
    assert any(m < 0 for _, _, m in outcomes)
    assert any(m > 0 and (o.choice >= 0).sum() == ae.max_changes(budget) for ae, o, m in outcomes)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_evaluated_text_is_within_budget(toy_group, name):
    budget = 0.2
    flipped = 0
    group = toy_group
    for seed in range(3):  # three draws of the victim's effects
        scorer = AdditiveScorer(group, seed)
        outcomes = ATTACKS[name](scorer, budget, **FAST.get(name, {}))
        limits = np.array([ae.max_changes(budget) for ae in group.members])
        assert all(((choice != ORIGINAL).sum() <= limits[m]) for m, choice in scorer.seen)
        for i, o in enumerate(outcomes):
            assert (o.choice >= 0).sum() <= limits[i] and (o.choice >= ORIGINAL).all()
            assert o.queries == scorer.queries[i] == sum(m == i for m, _ in scorer.seen)
            flipped += scorer.margin(np.array([i]), o.choice[None])[0] < 0
    assert flipped > 0


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_text_failing_the_constraints_is_never_queried(toy_group, name):
    """With a constraint check that refuses every text holding candidate 0 of a slot (a stand-in for
    the sentence similarity), no such text reaches the model, and the attacks still search the others."""
    budget = 0.2
    refuse = lambda member, choice: ~(choice == 0).any(1)
    asked = []
    check = lambda member, choice: asked.append(len(member)) or refuse(member, choice)
    for seed in range(3):
        scorer = AdditiveScorer(toy_group, seed, allowed=check)
        outcomes = ATTACKS[name](scorer, budget, **FAST.get(name, {}))
        assert not any((choice == 0).any() for _, choice in scorer.seen)
        assert any((choice > 0).any() for _, choice in scorer.seen)
        assert all(not (o.choice == 0).any() for o in outcomes)
    assert sum(asked) > 0


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_query_budget_is_respected_exactly(toy_group, name):
    """With a query budget, each example's evaluated texts are the first ``budget`` of those the same
    search evaluates without one: it stops where the budget runs out, never past it, and keeps only a
    text it evaluated. An example that ran out and did not flip within its queries is a failure."""
    budget, ran_out = 0.2, []
    for seed in range(2):
        free = AdditiveScorer(toy_group, seed)
        unlimited = ATTACKS[name](free, budget, **FAST.get(name, {}))
        for query_budget in (1, 4, 9, 40):
            scorer = AdditiveScorer(toy_group, seed, query_budget=query_budget)
            outcomes = ATTACKS[name](scorer, budget, **FAST.get(name, {}))
            for i, (o, u) in enumerate(zip(outcomes, unlimited)):
                seen = [c for m, c in scorer.seen if m == i]
                full = [c for m, c in free.seen if m == i]
                assert o.queries == len(seen) <= query_budget
                assert o.exhausted == (len(full) > query_budget)
                np.testing.assert_array_equal(np.array(seen), np.array(full[: len(seen)]).reshape(len(seen), -1))
                if o.exhausted:
                    assert o.queries == query_budget
                    assert any((c == o.choice).all() for c in seen)  # a text it evaluated (the clean one at worst)
                else:
                    np.testing.assert_array_equal(o.choice, u.choice)  # the budget never bit: the same search
                ran_out.append(o.exhausted)
    assert any(ran_out) and not all(ran_out)
