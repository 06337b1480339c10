"""Tokenizer conventions read from the tokenizers of each family: WordPiece (BERT), byte-level BPE
with and without special tokens (RoBERTa, GPT-2), SentencePiece with and without a dummy prefix
(Llama 2, Gemma). The tokenizers are tiny ones trained here with the `tokenizers` library."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import BertTokenizer, PreTrainedTokenizerFast

from jaxrobust.attacks.synonyms import whole_word_tokens
from jaxrobust.data.conventions import BYTE_BPE, SENTENCEPIECE, WORDPIECE, conventions
from jaxrobust.data.encoding import word_spans
from jaxrobust.errors import JaxRobustError

CORPUS = ["the film was good", "the plot was bad", "hello world", "a boring film", "the films were great",
          "it was not very good", "hello there, world"] * 20
TEXT = "the films were good, hello world"


def _trained(pre, decoder, special: list[str], vocab_size: int = 120) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=special[0] if special[0] == "<unk>" else None))
    tok.pre_tokenizer, tok.decoder = pre, decoder
    alphabet = pre_tokenizers.ByteLevel.alphabet() if isinstance(pre, pre_tokenizers.ByteLevel) else []
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size + len(alphabet), special_tokens=special, initial_alphabet=alphabet))
    return tok


def _template(tok: Tokenizer, single: str, pair: str) -> None:
    names = {t for t in (single + " " + pair).split() if t.startswith("<")}
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=[(n, tok.token_to_id(n)) for n in names])


def bert(tmp_path):
    words = ["the", "film", "##s", "were", "good", ",", "hello", "world", "plot", "was", "bad", "boring"]
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return BertTokenizer(vocab=str(tmp_path / "vocab.txt"))


def gpt2(_):
    tok = _trained(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), ["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def roberta(_):
    tok = _trained(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), ["<s>", "<pad>", "</s>", "<unk>"])
    _template(tok, "<s> $A </s>", "<s> $A </s> </s> $B </s>")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def llama(_):
    tok = _trained(pre_tokenizers.Metaspace(prepend_scheme="first"), decoders.Metaspace(prepend_scheme="first"), ["<unk>", "<s>", "</s>"])
    _template(tok, "<s> $A", "<s> $A <s> $B")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def gemma(_):
    tok = _trained(pre_tokenizers.Metaspace(prepend_scheme="never"), decoders.Metaspace(prepend_scheme="never"), ["<unk>", "<pad>", "<bos>", "<eos>"])
    _template(tok, "<bos> $A", "<bos> $A <bos> $B")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


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
    tok = _trained(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), ["<unk>"])
    with pytest.raises(JaxRobustError, match="neither a pad nor an end-of-text token"):
        conventions(PreTrainedTokenizerFast(tokenizer_object=tok))
