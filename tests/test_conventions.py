"""Tokenizer conventions read from the tokenizers of each family: WordPiece (BERT), byte-level BPE
with and without special tokens (RoBERTa, GPT-2), SentencePiece with and without a dummy prefix
(Llama 2, Gemma). The tokenizers are tiny ones trained here with the `tokenizers` library."""

from __future__ import annotations

import pytest
from conftest import TEXT, bert, gemma, gpt2, llama, roberta, trained_bpe
from tokenizers import decoders, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from jaxrobust.attacks.synonyms import whole_word_tokens
from jaxrobust.data.conventions import BYTE_BPE, SENTENCEPIECE, WORDPIECE, conventions
from jaxrobust.data.encoding import word_spans
from jaxrobust.errors import JaxRobustError

# family: (builder, scheme, special tokens before / after one text, pads with eos, space prefix)
FAMILIES = {
    "bert": (bert, WORDPIECE, 1, 1, False, ""),
    "roberta": (roberta, BYTE_BPE, 1, 1, False, " "),
    "gpt2": (gpt2, BYTE_BPE, 0, 0, True, " "),
    "llama": (llama, SENTENCEPIECE, 1, 0, True, ""),
    "gemma": (gemma, SENTENCEPIECE, 1, 0, False, " "),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_conventions_are_read_from_the_tokenizer(family, tmp_path):
    build, scheme, prefix, suffix, pad_is_eos, space = FAMILIES[family]
    tok = build(tmp_path)
    got = conventions(tok)
    assert (got.scheme, got.prefix, got.suffix, got.pad_is_eos, got.space_prefix) == (scheme, prefix, suffix, pad_is_eos, space)
    assert got.pad_id == (tok.eos_token_id if pad_is_eos else tok.pad_token_id)
    ids = tok(TEXT)["input_ids"]
    assert len(ids) - got.n_special() == len(tok(TEXT, add_special_tokens=False)["input_ids"])
    assert got.n_special(pair=True) == len(tok(TEXT, TEXT)["input_ids"]) - 2 * (len(ids) - got.n_special())
    assert conventions(tok) is got  # read once per tokenizer


@pytest.mark.parametrize("family", FAMILIES)
def test_a_word_tokenised_alone_in_its_context_gets_its_tokens_in_the_text(family, tmp_path):
    """The rule candidates are tokenised by: the context prefix before a word alone gives exactly
    the tokens the word has inside the text, for every word after a space and the first word."""
    tok = FAMILIES[family][0](tmp_path)
    conv = conventions(tok)
    enc = tok(TEXT, add_special_tokens=False, return_offsets_mapping=True)
    for start, end in word_spans(TEXT):
        if start > 0 and not TEXT[start - 1].isspace():
            continue  # a word glued to the one before (none is a slot candidate context here)
        # The tokens whose characters lie in the word or the space before it (which byte-level BPE
        # and SentencePiece write into the word's first token, or as a token of its own).
        left = start - 1 if start > 0 else start
        inside = [i for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if b > left and a < end]
        alone = tok(conv.context_prefix(TEXT, start) + TEXT[start:end], add_special_tokens=False)["input_ids"]
        assert alone == inside, (TEXT[start:end], tok.convert_ids_to_tokens(alone), tok.convert_ids_to_tokens(inside))


@pytest.mark.parametrize("family", FAMILIES)
def test_whole_words_and_continuations_follow_the_scheme(family, tmp_path):
    """A word split in pieces: its first piece is a whole-word token only if it is the word, and
    every later piece continues it -- in every scheme (a SentencePiece ``▁`` vocabulary must not be
    read as WordPiece, which would take fragments for words)."""
    tok = FAMILIES[family][0](tmp_path)
    conv = conventions(tok)
    words = whole_word_tokens(tok.get_vocab(), set(tok.all_special_tokens), conv.scheme)
    for word in ("good", "hello", "world", "films", "plot", "boring"):
        pieces = tok.convert_ids_to_tokens(tok(conv.context_prefix("x " + word, 2) + word, add_special_tokens=False)["input_ids"])
        assert all(conv.continues(p) for p in pieces[1:]), pieces
        assert not conv.continues(pieces[0]), pieces
        if len(pieces) == 1:
            assert words.get(word) == tok.convert_tokens_to_ids(pieces[0]), (word, pieces)
    assert not any(t in words.values() for t in tok.all_special_ids)


def test_a_tokenizer_without_pad_or_eos_is_refused():
    tok = trained_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), ["<unk>"])
    with pytest.raises(JaxRobustError, match="neither a pad nor an end-of-text token"):
        conventions(PreTrainedTokenizerFast(tokenizer_object=tok))
