"""What a tokenizer does to a text, read from the tokenizer itself, in one place.

Attacks and objectives work on words; models read tokens. Between the two sit conventions that
differ by family, and every module that needs one asks :func:`conventions` rather than guessing:

* **word-start and continuation markers** (:attr:`Conventions.scheme`): WordPiece (BERT, MPNet)
  marks continuations with ``##`` and leaves a word's first piece bare; byte-level BPE (RoBERTa,
  GPT-2, Llama 3, Qwen2) marks a piece that follows a space with ``Ġ``; SentencePiece (Llama 2,
  SmolLM2's Mistral-style vocabularies, Gemma, Phi-3) marks a piece that follows a space -- and the
  first word of a text -- with ``▁``;
* **the special tokens added** around one text (BERT ``[CLS] … [SEP]``, RoBERTa ``<s> … </s>``,
  GPT-2 none, Llama ``<s>`` / ``<|begin_of_text|>`` first only, Gemma ``<bos>``) and around a pair;
* **the pad id**: a decoder without a pad token pads with its end-of-text token (a run's config
  says so: :attr:`Conventions.pad_is_eos`), and the **unknown id** (a tokenizer without one --
  byte-level BPE can spell every string -- uses the pad id: an attack's ``UNK`` choice then writes
  that token);
* the **padding side** (the model reads positions from the attention mask either way), and what
  goes before a word tokenised alone to get its tokens after a space in a text
  (:attr:`Conventions.space_prefix`).
"""

from __future__ import annotations

import dataclasses
import weakref

from jaxrobust.errors import JaxRobustError

WORDPIECE, BYTE_BPE, SENTENCEPIECE = "wordpiece", "byte-bpe", "sentencepiece"
MARKERS = {BYTE_BPE: "Ġ", SENTENCEPIECE: "▁"}  # the word-start marker of each scheme that has one
CONTINUATION = "##"  # WordPiece's continuation marker


@dataclasses.dataclass(frozen=True)
class Conventions:
    scheme: str  # WORDPIECE, BYTE_BPE or SENTENCEPIECE
    pad_id: int
    pad_is_eos: bool  # no pad token: padding with the end-of-text token
    unk_id: int
    prefix: int  # special tokens before one text
    suffix: int  # special tokens after one text
    pair_special: int  # special tokens of a text pair, in all
    padding_side: str
    # Tokenised alone, a word gets its in-text tokens after a space with this before it: " " for
    # byte-level BPE and for SentencePiece without a dummy prefix (Gemma), "" for WordPiece and for
    # SentencePiece that marks a text's first word (Llama 2). Found by trying both.
    space_prefix: str = ""

    def word_of(self, token: str) -> str | None:
        return word_of(self.scheme, token)

    def continues(self, token: str) -> bool:
        return continues(self.scheme, token)

    def context_prefix(self, text: str, start: int) -> str:
        """What to put before a word starting at ``start`` of ``text`` so that tokenising it alone
        gives its tokens in context (:attr:`space_prefix` after whitespace, else nothing)."""
        return self.space_prefix if start > 0 and text[start - 1].isspace() else ""

    def n_special(self, pair: bool = False) -> int:
        """Special tokens a text (or a pair, ``pair``) gets: what is not content in its tokens."""
        return self.pair_special if pair else self.prefix + self.suffix


def word_of(scheme: str, token: str) -> str | None:
    """The word that vocabulary ``token`` spells where a word starts after a space, or None (a
    continuation piece, or a bare piece of a marking scheme)."""
    if scheme == WORDPIECE:
        return None if token.startswith(CONTINUATION) else token
    marker = MARKERS[scheme]
    return token[len(marker) :] if token.startswith(marker) and len(token) > len(marker) else None


def continues(scheme: str, token: str) -> bool:
    """Whether ``token`` continues the word before it: a ``##`` piece, or (marking schemes) a piece
    without the word-start marker that begins with a letter, digit or apostrophe (``'t`` continues
    ``Ġdon``; ``,`` does not continue ``Ġgood``)."""
    if scheme == WORDPIECE:
        return token.startswith(CONTINUATION)
    return not token.startswith(MARKERS[scheme]) and (token[:1].isalnum() or token[:1] == "'")


_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def conventions(tokenizer) -> Conventions:
    """The :class:`Conventions` of a Hugging Face tokenizer (computed once per tokenizer object)."""
    try:
        return _KNOWN[tokenizer]
    except (KeyError, TypeError):
        pass
    got = _read(tokenizer)
    try:
        _KNOWN[tokenizer] = got
    except TypeError:  # not weakly referenceable: computed again next time
        pass
    return got


def scheme_of(vocab: dict[str, int]) -> str:
    """The marker scheme of a bare vocabulary (no tokenizer at hand): the marker most of its tokens
    carry, ``##`` counting for WordPiece (which wins ties, and an unmarked vocabulary)."""
    counts = {WORDPIECE: sum(t.startswith(CONTINUATION) for t in vocab),
              **{scheme: sum(t.startswith(m) for t in vocab) for scheme, m in MARKERS.items()}}
    best = max(counts.values())
    return WORDPIECE if counts[WORDPIECE] == best else max(counts, key=counts.get)


def _scheme(tokenizer) -> str:
    """The marker scheme of a tokenizer: the marker on the first token of a word after a space
    (none: WordPiece)."""
    first = tokenizer.convert_ids_to_tokens(tokenizer(" hello", add_special_tokens=False)["input_ids"][:1])
    for scheme, marker in MARKERS.items():
        if first and first[0].startswith(marker):
            return scheme
    return WORDPIECE


def _read(tokenizer) -> Conventions:
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad is None and eos is None:
        raise JaxRobustError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has neither a pad nor an end-of-text token: "
                             "batches cannot be padded")
    pad_id = eos if pad is None else pad
    unk = tokenizer.unk_token_id
    prefix, suffix = _special_around(tokenizer)
    scheme = _scheme(tokenizer)
    return Conventions(
        scheme=scheme,
        pad_id=int(pad_id),
        pad_is_eos=pad is None,
        unk_id=int(pad_id if unk is None else unk),
        prefix=prefix,
        suffix=suffix,
        pair_special=int(tokenizer.num_special_tokens_to_add(pair=True)),
        padding_side=str(getattr(tokenizer, "padding_side", "right")),
        space_prefix=_space_prefix(tokenizer, scheme),
    )


def _space_prefix(tokenizer, scheme: str) -> str:
    """:attr:`Conventions.space_prefix`: the prefix whose tokens of ``prefix + word`` equal the word's
    tokens after a space in a text (``"a hello"`` without those of ``"a"``)."""
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    before, in_text = ids("a"), ids("a hello")
    if in_text[: len(before)] == before:
        for prefix in ("", " "):
            if ids(prefix + "hello") == in_text[len(before) :]:
                return prefix
    return " " if scheme == BYTE_BPE else ""  # the probe merged across the space: the scheme's rule


def _special_around(tokenizer) -> tuple[int, int]:
    """Special tokens before and after one text, found by tokenising a probe with and without them."""
    probe = "hello world"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return start, len(full) - start - len(plain)
    raise JaxRobustError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} changes a text's own tokens when it adds its special tokens")
