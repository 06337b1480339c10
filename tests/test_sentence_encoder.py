"""The sentence encoder of the attack constraints computes what sentence-transformers computes."""

from __future__ import annotations

import numpy as np
import pytest

from jaxrobust.attacks.sentence_encoder import SentenceEncoder

TEXTS = [
    "the film was good",
    "a very good plot and a great film",
    "bad",
    "it was boring and the plot was very bad and the film was boring",
]


def _reference(directory, max_length: int):
    """sentence-transformers' own pipeline over a plain Hugging Face folder: Transformer, mean
    Pooling, Normalize (the modules of all-MiniLM-L6-v2)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(directory), max_seq_length=max_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")


def test_tiny_encoder_matches_sentence_transformers(tiny_model_dir):
    directory, _ = tiny_model_dir("bert", num_labels=2)
    ours = SentenceEncoder(str(directory), max_length=12, batch_size=3)  # the last text is cut; two batches
    theirs = _reference(directory, max_length=12).encode(TEXTS, convert_to_numpy=True, batch_size=3)
    got = ours.embed(TEXTS)
    assert got.shape == theirs.shape == (4, 32)
    np.testing.assert_allclose(got, theirs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # Cut at 12 tokens, the longest text is its own first 10 words.
    np.testing.assert_allclose(ours.similarity(TEXTS[3:], [" ".join(TEXTS[3].split()[:10])]), [1.0], atol=1e-5)


@pytest.mark.assets
def test_minilm_matches_sentence_transformers_and_ranks_paraphrases():
    from jaxrobust import assets

    ours = SentenceEncoder()  # bundle:minilm-l6, max_seq_length 256
    texts = ["the film was wonderful", "the movie was excellent", "the stock market fell sharply today", "it is a dull, tedious picture"]
    theirs = _reference(assets.resolve("bundle:minilm-l6"), max_length=256).encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(ours.embed(texts), theirs, atol=1e-4, rtol=0)
    paraphrase, unrelated = ours.similarity(texts[:1] * 2, [texts[1], texts[2]])
    assert paraphrase > 0.7 > 0.2 > unrelated  # measured: 0.80 and 0.07


def test_similarity_needs_pairs(tiny_model_dir):
    directory, _ = tiny_model_dir("bert", num_labels=2)
    encoder = SentenceEncoder(str(directory))
    assert encoder.embed([]).shape == (0, 32)
    with pytest.raises(ValueError, match="as many texts on each side, got 2 and 1"):
        encoder.similarity(["a", "b"], ["c"])
