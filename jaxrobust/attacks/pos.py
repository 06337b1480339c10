"""Part of speech in context: the recipes' constraint that a substitute keeps the word's part of speech.

TextFooler, A2T and BAE keep a candidate only if, put in the sentence, it has the part of speech
the replaced word had there (coarse tags: a noun for a noun, whatever its number). The tagger is
Honnibal's greedy averaged perceptron, 45 Penn Treebank tags: nltk's ``PerceptronTagger`` (the same
algorithm and features) with the weights that the ``textblob-aptagger`` wheel ships (registry
bundle ``aptagger``; nltk's own weights are a download this machine cannot make). Its tags are
reduced to the universal tag set of Petrov, Das and McDonald (2012): NOUN, VERB, ADJ, ADV, ...

:meth:`Tagger.candidate_tags` tags every candidate of one position at once. The tagger reads two
words on each side and the two previous tags, so changing word ``i`` can change the tags of words
``i-2 .. i`` only: those three are re-tagged from the sentence's own tags before them, which gives
exactly the tag a full re-tagging of the changed sentence gives (a test checks this).
"""

from __future__ import annotations

import functools
import pickle
from typing import Sequence

from jaxrobust import assets
from jaxrobust.errors import JaxRobustError

BUNDLE = "bundle:aptagger"
WEIGHTS = "trontagger-0.1.0.pickle"

# Penn Treebank -> universal tags (Petrov et al. 2012: the en-ptb table of nltk's universal_tagset).
UNIVERSAL = {
    **dict.fromkeys(["NN", "NNS", "NNP", "NNPS"], "NOUN"),
    **dict.fromkeys(["VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "MD"], "VERB"),
    **dict.fromkeys(["JJ", "JJR", "JJS"], "ADJ"),
    **dict.fromkeys(["RB", "RBR", "RBS", "WRB"], "ADV"),
    **dict.fromkeys(["PRP", "PRP$", "WP", "WP$"], "PRON"),
    **dict.fromkeys(["DT", "PDT", "WDT", "EX"], "DET"),
    **dict.fromkeys(["POS", "RP", "TO"], "PRT"),
    **dict.fromkeys(["FW", "LS", "SYM", "UH"], "X"),
    **dict.fromkeys([".", ",", ":", "``", "''", "-LRB-", "-RRB-", "#", "$"], "."),
    "IN": "ADP",
    "CC": "CONJ",
    "CD": "NUM",
}


def universal(tag: str) -> str:
    """The universal tag of a Penn Treebank tag (X for one outside the table)."""
    return UNIVERSAL.get(tag, "X")


class Tagger:
    """nltk's averaged perceptron with given weights; tags pre-split words (no tokeniser)."""

    def __init__(self, weights: dict, tagdict: dict, classes: set):
        from nltk.tag.perceptron import PerceptronTagger

        self._nltk = PerceptronTagger(load=False)
        self._nltk.model.weights, self._nltk.model.classes = weights, classes
        self._nltk.tagdict, self._nltk.classes = tagdict, classes

    def tag(self, words: Sequence[str]) -> list[str]:
        """The Penn Treebank tag of each word, in context."""
        return [t for _, t in self._nltk.tag(list(words))] if words else []

    def _tag_at(self, words: Sequence[str], context: list[str], i: int, prev: str, prev2: str) -> str:
        tag = self._nltk.tagdict.get(words[i])
        if not tag:
            features = self._nltk._get_features(i, words[i], context, prev, prev2)
            tag, _ = self._nltk.model.predict(features)  # (tag, confidence)
        return tag

    def candidate_tags(self, words: Sequence[str], position: int, candidates: Sequence[str], tags: Sequence[str] | None = None) -> list[str]:
        """The Penn Treebank tag each candidate gets at ``position`` of ``words`` (``tags``: the
        sentence's own tags, computed if not given)."""
        words = list(words)
        tags = list(tags) if tags is not None else self.tag(words)
        start = max(0, position - 2)  # tags before start are unchanged by the substitution
        # The tags before each word, oldest first: nltk starts a sentence with prev, prev2 = START.
        history = [self._nltk.START[1], self._nltk.START[0], *tags]
        out = []
        for candidate in candidates:
            changed = words[:position] + [candidate] + words[position + 1 :]
            context = self._nltk.START + [self._nltk.normalize(w) for w in changed] + self._nltk.END
            prev2, prev = history[start : start + 2]
            for j in range(start, position + 1):
                tag = self._tag_at(changed, context, j, prev, prev2)
                prev2, prev = prev, tag
            out.append(tag)
        return out


@functools.cache
def tagger() -> Tagger:
    """The default tagger (weights from the ``aptagger`` bundle, fetched on first use)."""
    path = assets.resolve(BUNDLE) / WEIGHTS
    try:
        with open(path, "rb") as f:
            weights, tagdict, classes = pickle.load(f)
    except (OSError, pickle.UnpicklingError, ValueError, EOFError) as e:
        raise JaxRobustError(f"cannot load the part-of-speech tagger {path}: {e}; delete {path.parent} to fetch it again") from e
    return Tagger(weights, tagdict, classes)
