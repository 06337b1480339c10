"""The part-of-speech tagger of the attack constraints: real tags, and candidate tags that equal a
full re-tagging of the changed sentence."""

from __future__ import annotations

import random

import pytest

from jaxrobust.attacks.pos import UNIVERSAL, tagger, universal

pytestmark = pytest.mark.assets  # the tagger's weights are the aptagger bundle

SENTENCES = [
    "the film was a boring , predictable mess but the actors shine".split(),
    "I saw her duck under the table".split(),
    "an engrossing story that never stops surprising its audience".split(),
    "it 's not funny".split(),
]


def test_tags_in_context():
    tags = [universal(t) for t in tagger().tag(SENTENCES[0])]
    assert tags == ["DET", "NOUN", "VERB", "DET", "ADJ", ".", "ADJ", "NOUN", "CONJ", "DET", "NOUN", "VERB"]
    assert tagger().tag([]) == []


def test_candidate_tags_equal_a_full_retagging():
    rng = random.Random(0)
    pool = "great film runs quickly boring plot the watched happy never story shines it".split()
    t = tagger()
    for words in SENTENCES:
        tags = t.tag(words)
        for position in range(len(words)):
            candidates = rng.sample(pool, 5)
            expected = [t.tag(words[:position] + [c] + words[position + 1 :])[position] for c in candidates]
            assert t.candidate_tags(words, position, candidates, tags) == expected
            assert t.candidate_tags(words, position, candidates) == expected


def test_a_wrong_part_of_speech_is_seen():
    words = "the film was boring".split()
    got = [universal(t) for t in tagger().candidate_tags(words, 3, ["dull", "disappointment", "tediously"])]
    assert got == ["ADJ", "NOUN", "ADV"]


def test_every_penn_tag_of_the_model_has_a_universal_tag():
    assert tagger()._nltk.classes <= set(UNIVERSAL)


def test_a_damaged_weights_file_is_named(tmp_path, monkeypatch):
    from jaxrobust.attacks import pos
    from jaxrobust.errors import JaxRobustError

    (tmp_path / pos.WEIGHTS).write_bytes(b"not a pickle")
    monkeypatch.setattr(pos.assets, "resolve", lambda ref: tmp_path)
    with pytest.raises(JaxRobustError, match=r"cannot load the part-of-speech tagger .*trontagger-0\.1\.0\.pickle: .*; delete .* to fetch it again"):
        pos.tagger.__wrapped__()
