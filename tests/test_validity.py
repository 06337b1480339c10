"""The validity section of a report: thesaurus synonyms, sentence similarity and part of speech of
the successful examples."""

from __future__ import annotations

import pytest

from jaxrobust.attacks.sentence_encoder import SentenceEncoder
from jaxrobust.attacks.validity import validity

pytestmark = pytest.mark.assets  # the tagger's weights


def _record(original: str, perturbed: str, substitutions: list, success: bool = True) -> dict:
    return {"original_text": original, "perturbed_text": perturbed, "substitutions": substitutions, "success": success}


def test_validity_of_a_synonym_and_of_a_wrong_substitute(tiny_model_dir):
    encoder = SentenceEncoder(str(tiny_model_dir("bert", num_labels=2)[0]))
    records = [
        _record("the film was good", "the movie was good", [(1, "film", "movie")]),  # a synonym, a noun for a noun
        _record("a very boring film", "a very tediously film", [(2, "boring", "tediously")]),  # neither
        _record("it was great", "it was great", [], success=False),  # not a success: not counted
    ]
    got = validity(records, encoder)
    sims = encoder.similarity([r["original_text"] for r in records[:2]], [r["perturbed_text"] for r in records[:2]])
    assert got["n_successes"] == 2 and got["n_substitutions"] == 2
    assert got["synonym_share"] == 0.5 and got["pos_kept_share"] == 0.5
    assert got["similarity_mean"] == pytest.approx(float(sims.mean())) and got["similarity_min"] == pytest.approx(float(sims.min()))
    assert got["encoder"] == encoder.ref


def test_validity_without_a_success(tiny_model_dir):
    encoder = SentenceEncoder(str(tiny_model_dir("bert", num_labels=2)[0]))
    got = validity([_record("it was great", "it was great", [], success=False)], encoder)
    assert got["n_successes"] == 0 and got["synonym_share"] is None and got["similarity_min"] is None
