"""How far the successful adversarial examples of an attack still mean what their originals meant.

An adversarial example counts only if a reader would say it means the same as the original, so a
report gives, beside the success rate, three measures over its successful examples:

* ``synonym_share``: the share of their substitutions whose new word WordNet puts in a synset of
  the old one (:func:`jaxrobust.attacks.wordnet.are_synonyms`: any sense, inflections reduced), a
  thesaurus check independent of where the candidates came from;
* ``similarity_mean`` / ``similarity_min``: the cosine between the sentence-encoder embeddings of
  each perturbed text and its original (:mod:`.sentence_encoder`, all-MiniLM-L6-v2 by default);
* ``pos_kept_share``: the share of successes whose every substitution keeps the replaced word's
  coarse part of speech in context (:mod:`.pos`: the original sentence tagged, and the perturbed
  one).

Each is None when the attack had no success.
"""

from __future__ import annotations

from typing import Sequence

from jaxrobust.attacks import pos
from jaxrobust.attacks import wordnet as wordnet_lib
from jaxrobust.data.encoding import word_spans


def _words(text: str) -> list[str]:
    return [text[s:e] for s, e in word_spans(text)]


def keeps_pos(record: dict, tagger: pos.Tagger) -> bool:
    """Whether each substitution of ``record`` has, in the perturbed text, the coarse tag its word had
    in the original (word indices are shared: a substitution replaces one word by one word)."""
    before, after = _words(record["original_text"]), _words(record["perturbed_text"])
    if len(before) != len(after):
        return False  # a substitute that split into several words changed the sentence's structure
    old_tags, new_tags = tagger.tag(before), tagger.tag(after)
    return all(pos.universal(old_tags[w]) == pos.universal(new_tags[w]) for w, _, _ in record["substitutions"])


def validity(records: Sequence[dict], encoder, tagger: pos.Tagger | None = None) -> dict:
    """The ``validity`` section of a report over the successful ``records`` (``encoder``: a
    :class:`~jaxrobust.attacks.sentence_encoder.SentenceEncoder`)."""
    successes = [r for r in records if r["success"]]
    substitutions = [(old, new) for r in successes for _, old, new in r["substitutions"]]
    out = {"n_successes": len(successes), "n_substitutions": len(substitutions), "encoder": encoder.ref}
    if not successes:
        return {**out, "synonym_share": None, "similarity_mean": None, "similarity_min": None, "pos_kept_share": None}
    sims = encoder.similarity([r["original_text"] for r in successes], [r["perturbed_text"] for r in successes])
    tagger = tagger or pos.tagger()
    return {
        **out,
        "synonym_share": sum(wordnet_lib.are_synonyms(old, new) for old, new in substitutions) / len(substitutions),
        "similarity_mean": float(sims.mean()),
        "similarity_min": float(sims.min()),
        "pos_kept_share": sum(keeps_pos(r, tagger) for r in successes) / len(successes),
    }
