"""Word alignment of encoded examples: every token points back to the word it came from."""

from __future__ import annotations

import numpy as np

from jaxrobust.data.encoding import encode, word_spans
from jaxrobust.data.tasks import Example
from jaxrobust.models.loading import load_tokenizer


def test_word_spans_split_words_and_punctuation():
    text = "It's a film, not a plot!"
    assert [text[s:e] for s, e in word_spans(text)] == ["It's", "a", "film", ",", "not", "a", "plot", "!"]


def test_tokens_align_to_their_words(tiny_model_dir):
    directory, _ = tiny_model_dir("bert")
    tokenizer = load_tokenizer(directory)
    text = "the films was great"  # "films" is split into "film" + "##s"
    (enc,) = encode(tokenizer, [Example(text, 1)], max_length=16)
    words = [text[s:e] for s, e in enc.words]
    assert words == ["the", "films", "was", "great"]
    tokens = tokenizer.convert_ids_to_tokens(enc.input_ids.tolist())
    assert tokens == ["[CLS]", "the", "film", "##s", "was", "great", "[SEP]"]
    np.testing.assert_array_equal(enc.token_words, [-1, 0, 1, 1, 2, 3, -1])
    assert enc.label == 1 and enc.length == 7


def test_pair_inputs_align_the_second_segment(tiny_model_dir):
    directory, _ = tiny_model_dir("bert")
    tokenizer = load_tokenizer(directory)
    (enc,) = encode(tokenizer, [Example("the plot", 0, text_b="very boring")], max_length=16)
    assert [("very boring")[s:e] for s, e in enc.words] == ["very", "boring"]
    np.testing.assert_array_equal(enc.token_type_ids, [0, 0, 0, 0, 1, 1, 1])
    # Premise tokens are not attacked: only hypothesis tokens carry word indices.
    np.testing.assert_array_equal(enc.token_words, [-1, -1, -1, -1, 0, 1, -1])


def test_truncation_keeps_alignment_of_what_remains(tiny_model_dir):
    directory, _ = tiny_model_dir("bert")
    tokenizer = load_tokenizer(directory)
    (enc,) = encode(tokenizer, [Example("the film was good and great", 1)], max_length=5)
    assert enc.length == 5
    np.testing.assert_array_equal(enc.token_words, [-1, 0, 1, 2, -1])
