"""The recipes' constraints: which substitutions a search may query, and the re-check of final texts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from jaxrobust.attacks import constraints
from jaxrobust.attacks.constraints import RECIPES, Constraints, SimilarityFilter, parse, string_similarity, window_bounds
from jaxrobust.attacks.engine import make_group
from jaxrobust.attacks.layout import ORIGINAL, prepare_examples
from jaxrobust.attacks.run import AttackSettings
from jaxrobust.attacks.sentence_encoder import SentenceEncoder
from jaxrobust.data.tasks import Example
from jaxrobust.errors import JaxRobustError
from jaxrobust.models.loading import load_tokenizer


def test_windows_follow_textattack():
    words = [f"w{i}" for i in range(20)]
    words.insert(5, ",")  # punctuation is inside a window but not counted
    b = window_bounds(words, 5)
    assert b[words.index("w0")].tolist() == [0, words.index("w4") + 1]  # shifted right at the start
    assert b[words.index("w10")].tolist() == [words.index("w8"), words.index("w12") + 1]
    assert b[words.index("w19")].tolist() == [words.index("w15"), len(words)]  # shifted left at the end
    assert b[words.index("w3")].tolist() == [words.index("w1"), words.index("w5") + 1]  # the comma inside
    assert window_bounds(words[:4], 15).tolist() == [[0, 4]] * 4  # a short text: all of it
    assert window_bounds(words, None).tolist() == [[0, len(words)]] * len(words)


def test_recipes_and_names():
    assert parse("default", "gradient") == Constraints(pos=True, similarity=0.9)
    assert parse("default", "textfooler") == Constraints(True, 0.840845, 15, "angular")
    assert parse("default", "pwws") == Constraints()
    assert parse("none", "textfooler") == Constraints()
    assert parse("pos", "textfooler") == Constraints(pos=True)
    assert parse("similarity", "pwws") == Constraints(similarity=0.9)  # A2T's, for a recipe without one
    assert parse("pos,similarity", "textfooler", threshold=0.5, window=7) == Constraints(True, 0.5, 7, "angular")
    assert [RECIPES[a].tag for a in ("gradient", "textfooler", "pwws")] == ["pos-sim0.9", "pos-asim0.840845-w15", "none"]
    # Report names carry the constraints and the candidates' version: no report is reused across them.
    a, b = AttackSettings(), AttackSettings(constraints="none")
    assert a.name != b.name and "-pos-sim0.9-" in a.name and "-none-" in b.name and "-wordnet-cf-v" in a.name
    assert AttackSettings(attack="pwws").synonyms == "wordnet" and AttackSettings().synonyms == "wordnet-cf"


@pytest.mark.parametrize("kwargs, message", [
    (dict(constraints="pos,grammar"), "unknown constraint 'grammar'; choose default, none"),
    (dict(constraints="pos", similarity=0.9), "need the similarity constraint"),
    (dict(similarity=1.5), "similarity threshold must be in [0, 1], got 1.5"),
    (dict(similarity=-0.1), "similarity threshold must be in [0, 1]"),
    (dict(window=0), "--window must be at least 1"),
    (dict(attack="ascc", constraints="similarity"), "ascc searches relaxed"),
])
def test_bad_constraints_are_refused(kwargs, message):
    with pytest.raises(JaxRobustError, match=re.escape(message)):
        AttackSettings(**kwargs)


def _filter(directory, rules: Constraints, texts: list[str], offered: dict):
    tok = load_tokenizer(directory)
    examples = [Example(t, 0) for t in texts]
    items = prepare_examples(tok, examples, lambda w: offered.get(w.lower(), []), 64, 3)
    group = make_group(tok, items, 1.0, 64, 3)
    encoder = SentenceEncoder(str(directory), batch_size=4)  # several device batches
    return group, SimilarityFilter(encoder, group.members, rules, group.layout.cand_len.shape[1:]), encoder


@pytest.mark.parametrize("window", [None, 3])
def test_similarity_on_device_equals_similarity_of_the_strings(tiny_model_dir, window):
    """The filter scores texts assembled from the layout; the string check tokenises the strings:
    both give the same similarity, whole texts and windows (every changed word's window)."""
    directory, _ = tiny_model_dir("bert", num_labels=2)
    texts = ["the film was good and the plot was bad", "a very boring film , it was not great"]
    offered = {"good": ["great", "bad"], "bad": ["good", "boring"], "film": ["plot"], "boring": ["good", "bad"]}
    rules = Constraints(similarity=0.5, window=window)
    group, filt, encoder = _filter(directory, rules, texts, offered)
    rows, choices = [], []
    for m, ae in enumerate(group.members):
        W = group.layout.slot_seg.shape[1]
        singles = [[(slot, k)] for slot, options in enumerate(ae.candidates) for k in range(len(options))]
        last = len(ae.slot_words) - 1
        for picks in singles + [[(0, 0), (1, 0)], [(0, 0), (last, 0)], []]:
            c = np.full(W, ORIGINAL, np.int32)
            for slot, k in picks:
                c[slot] = k
            rows.append(m)
            choices.append(c)
    got = filt.scores(np.array(rows), np.stack(choices))
    want = [
        string_similarity(encoder, rules, group.members[m].text, group.members[m].perturbed_text(c),
                          [w for w, _, _ in group.members[m].substitutions(c)])
        for m, c in zip(rows, choices)
    ]
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got[-1] == 1.0 and (got < 1.0 - 1e-6).sum() >= 4  # unchanged texts pass; changes cost similarity
    assert (filt.allowed(np.array(rows), np.stack(choices)) == (got >= 0.5)).all()


@pytest.mark.parametrize("window, new_rows", [(15, 1), (3, 0)])
def test_each_distinct_window_is_embedded_once(tiny_model_dir, window, new_rows):
    """Two changes in a text shorter than the window share one compared text (one encoder row);
    two changes whose windows do not overlap reuse the windows scored for each change alone."""
    directory, _ = tiny_model_dir("bert", num_labels=2)
    group, filt, _ = _filter(directory, Constraints(similarity=0.5, window=window),
                             ["the film was good and the plot was bad"], {"film": ["plot"], "bad": ["good"]})
    assert [group.members[0].text[slice(*group.members[0].encoded.words[w])] for w in group.members[0].slot_words] == ["film", "bad"]
    W = group.layout.slot_seg.shape[1]
    singles = np.full((2, W), ORIGINAL, np.int32)
    singles[[0, 1], [0, 1]] = 0
    alone = filt.scores(np.zeros(2, np.int64), singles)
    assert filt.passes.sum() == 2
    pair = np.full((1, W), ORIGINAL, np.int32)
    pair[0, :2] = 0
    both = filt.scores(np.zeros(1, np.int64), pair)
    assert filt.passes.sum() == 2 + new_rows
    if new_rows == 0:
        assert both[0] == alone.min()


@pytest.mark.assets  # all-MiniLM-L6-v2
def test_a_low_similarity_substitute_is_rejected():
    """Under all-MiniLM-L6-v2 at A2T's threshold, a synonym passes and an unrelated word does not."""
    from jaxrobust import assets

    directory = assets.resolve("bundle:minilm-l6")
    texts = ["the acting was wonderful and the story kept me interested until the very end"]
    offered = {"wonderful": ["marvelous", "purple"]}
    group, filt, _ = _filter(directory, RECIPES["gradient"], texts, offered)
    W = group.layout.slot_seg.shape[1]
    choice = np.full((2, W), ORIGINAL, np.int32)
    choice[:, 0] = [0, 1]
    assert filt.allowed(np.zeros(2, np.int64), choice).tolist() == [True, False]
    assert filt.passes.sum() == 2  # the two trials, each embedded once (the reference is cached)


@pytest.mark.assets  # all-MiniLM-L6-v2
def test_an_attack_never_queries_a_text_that_fails_the_similarity(trained_tiny_run, monkeypatch):
    """With a threshold no substitution can reach, no text with a substitution reaches the model
    (the deletion probes of TextFooler do), and so no adversarial example is found."""
    from jaxrobust.attacks import engine
    from jaxrobust.attacks.run import attack_examples, load_target

    queried = []
    score = engine.Scorer.__call__
    monkeypatch.setattr(engine.Scorer, "__call__", lambda self, m, c: queried.append(np.asarray(c)) or score(self, m, c))
    target = load_target(str(trained_tiny_run))
    test = target.test[:24]
    cands = {"good": ["great"], "great": ["good"], "bad": ["boring"], "boring": ["bad"]}
    for attack in ("gradient", "textfooler"):
        settings = AttackSettings(attack=attack, synonyms="unused", n=len(test), budget=0.5, k=3,
                                  constraints="similarity", similarity=1.0)
        records, _ = attack_examples(target.victim, target.params, target.tokenizer, test, range(len(test)),
                                     lambda w: cands.get(w.lower(), []), settings, progress=False)
        attacked = [r for r in records if not r["skipped"]]
        assert attacked and not any(r["success"] or r["substitutions"] for r in attacked)
    assert queried and not any((c >= 0).any() for c in queried)


def test_the_final_text_is_rechecked(monkeypatch):
    """A flip whose final text fails a constraint is not a success, and says which constraint."""
    from jaxrobust.attacks import verify

    wrong_pos = dict(original_text="the film was good", perturbed_text="the film was quickly", substitutions=[[3, "good", "quickly"]])
    synonym = dict(original_text="the film was good", perturbed_text="the film was great", substitutions=[[3, "good", "great"]])
    assert verify.failed_constraints([wrong_pos, synonym], Constraints(pos=True), None) == ["pos", ""]
    seen = []
    monkeypatch.setattr(constraints, "string_similarities", lambda encoder, rules, texts: seen.append(texts) or np.full(len(texts), 0.85))
    assert verify.failed_constraints([wrong_pos, synonym], Constraints(pos=True, similarity=0.9), None) == ["pos", "similarity"]
    assert verify.failed_constraints([synonym], Constraints(pos=True, similarity=0.85), None) == [""]
    assert [len(t) for t in seen] == [1, 1]  # only the text that kept its part of speech is embedded
