"""Synonym candidate tables: for each word, the words a substitution attack may put in its place.

Word-substitution attacks (METHODS.md §3) replace words by meaning-preserving candidates. The
candidates come from one of four sources and are stored as padded arrays that an attack can move
to the device as they are: ``ids [V, K]`` (candidate word ids, best first, -1 = padding) and
``sims [V, K]`` (cosine similarity, nan where the source gives no score).

Sources (the ``spec`` of :func:`load_synonyms`):

``glove-cf``
    GloVe 6B 50d (registry bundle ``glove-6b-50d``), counter-fitted here to WordNet synonyms and
    antonyms (:mod:`jaxrobust.attacks.counterfit`); neighbours by cosine. Related words rather than
    synonyms: at k 8 only 9 % of its candidates are WordNet synonyms (good -> better, always).
``wordnet-cf`` (default)
    Attack-grade synonyms: the WordNet synonyms of each ``glove-cf`` word (a shared synset, or an
    adjective head and its satellite, among the :data:`WORDNET_CF_RANK` commonest senses of both
    words), inflected as the word is (:func:`wordnet_cf_lists`: films -> movies), ranked by the
    counter-fitted cosine, so that ``min_cos`` removes the senses the vectors do not support.
    Measured in ``bench/results/synonym_quality.md``: at k 8, cosine >= 0.5, 62 % of the content
    words of Rotten Tomatoes test sentences have a candidate, and 28 % of the first 8 candidates are
    in Jia et al.'s table (glove-cf: 8 %).
``counterfitted:PATH``
    Either counter-fitted vectors as text (each line a word and its numbers; Mrkšić et al. 2016
    publish 300-d ones), neighbours by cosine; or the JSON neighbour table of Jia et al. 2019
    (``{word: [up to 8 neighbours]}``, used by ASCC and RIFT; no scores, so ``min_cos`` does not
    apply). The format is detected from the content; a malformed file is reported with its first
    bad line.
``wordnet``
    WordNet synonyms (lemmas of all the word's synsets, single words), the source of PWWS; ordered
    by the word's senses (WordNet lists them most frequent first), then WordNet's lemma order. The
    vocabulary is WordNet's lemmas, so inflected forms (movies, walked) have no entry.
``embedding:MODEL``
    Nearest neighbours in the model's own input word-embedding matrix, among its whole-word tokens
    (WordPiece: no ``##`` prefix; BPE: ``Ġ`` + letters). MODEL is a directory, ``bundle:ID`` or hub id.

Filters, the same for every source:

1. Vocabulary: lower-case ASCII alphabetic words of two letters or more that are not
   :data:`STOP_WORDS` (nltk's English list). Stop words are thus never substituted (no entry)
   and never candidates; neither are numbers, contractions or words with other characters.
2. The word itself is never its own candidate.
3. Cosine >= ``min_cos`` where the source has scores.
4. No antonyms: candidates that WordNet lists as antonyms of the word, directly or through
   WordNet's adjective clusters (good / awful), are dropped (:func:`wordnet.antonym_pairs`).
   Applied when WordNet is available; ``params["wordnet"]`` records whether it was.
5. Same inflection. A word's class is the first of the suffixes ``-ing``, ``-ed``, ``-ly``, ``-s``
   that it ends with whose regular stem is itself a vocabulary word (walking/walk, making/make,
   running/run; liked/like, stopped/stop, tried/try; quickly/quick, happily/happy, gently/gentle;
   films/film, boxes/box, stories/story; stems of at least 3 letters; not -ss, -us, -is), else
   "base". A candidate is kept if its class is the word's, or if both words are WordNet
   adjectives (participles used as adjectives take plain adjectives: boring -> dull). So
   boring -/-> bore, quickly -/-> quick, movie -/-> films, films -/-> movie. A rough rule, meant
   to keep substitutions grammatical where English inflects regularly, not a morphology.
6. Top-k: the first ``k`` survivors. For vector sources they are looked for among the word's
   :func:`pool_size` nearest neighbours, so a word can end with fewer than ``k``.

Each table is built once per (source, k, min_cos) and cached under ``$JAXROBUST_CACHE/synonyms/``
as ``.npz``; the key includes :data:`TABLE_VERSION`, so changing the rules rebuilds stale caches.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
import re
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from jaxrobust import assets
from jaxrobust.attacks import counterfit
from jaxrobust.attacks import wordnet as wordnet_lib
from jaxrobust.data import conventions
from jaxrobust.errors import JaxRobustError

# nltk's English stop-word list (179 words, in nltk's order), kept here so that nothing needs
# nltk's data to know it.
STOP_WORD_LIST: tuple[str, ...] = tuple(
    """i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
    yourselves he him his himself she she's her hers herself it it's its itself they them their
    theirs themselves what which who whom this that that'll these those am is are was were be been
    being have has had having do does did doing a an the and but if or because as until while of at
    by for with about against between into through during before after above below to from up down
    in out on off over under again further then once here there when where why how all any both
    each few more most other some such no nor not only own same so than too very s t can will just
    don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't
    doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't
    needn needn't shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn
    wouldn't""".split()
)
STOP_WORDS: frozenset[str] = frozenset(STOP_WORD_LIST)

SOURCES = ("glove-cf", "wordnet-cf", "counterfitted:PATH", "wordnet", "embedding:MODEL")
# What each built-in source offers, in a reader's words (``synonyms describe`` prints it).
ABOUT = {
    "wordnet-cf": "attack-grade synonyms, the default: WordNet synonyms of the commonest senses, ranked by the counter-fitted cosine",
    "glove-cf": "related words, NOT synonyms: counter-fitted GloVe neighbours (at k 8, 9 % are WordNet synonyms)",
    "wordnet": "every WordNet synonym, all senses (PWWS's source)",
}
# Bump when a filter or a source changes: cached tables under another version are rebuilt.
TABLE_VERSION = 1
_WORD = re.compile(r"[a-z]{2,}")  # single letters (b, x) are not words worth substituting
_SUFFIXES = ("ing", "ed", "ly", "s")  # inflection classes 1..4; 0 = base


def is_vocab_word(word: str) -> bool:
    """Whether ``word`` may have candidates or be one: 2+ lower-case ASCII letters, not a stop word."""
    return bool(_WORD.fullmatch(word)) and word not in STOP_WORDS


@dataclasses.dataclass
class CandidateTable:
    """Synonym candidates of a vocabulary, as padded arrays.

    ``words``: the vocabulary (word id = position). ``ids [V, K]`` int32: candidate word ids, best
    first, -1 = padding (always after the real candidates). ``sims [V, K]`` float32: their cosine
    similarity, nan where the source has none (and at padding). ``params``: the settings and filters
    it was built with.
    """

    source: str
    words: list[str]
    ids: np.ndarray
    sims: np.ndarray
    params: dict
    index: dict[str, int] = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        self.ids = np.asarray(self.ids, np.int32)
        self.sims = np.asarray(self.sims, np.float32)
        if self.ids.shape != self.sims.shape or self.ids.ndim != 2 or self.ids.shape[0] != len(self.words):
            raise ValueError(f"ids {self.ids.shape} and sims {self.sims.shape} must be [{len(self.words)}, K]")
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def mask(self) -> np.ndarray:
        """``[V, K]`` bool: which entries of ``ids`` are real candidates."""
        return self.ids >= 0

    @property
    def k(self) -> int:
        return self.ids.shape[1]

    def candidates(self, word: str) -> list[str]:
        """The candidates of ``word`` (looked up lower-cased), best first; [] for stop words and
        words outside the vocabulary."""
        i = self.index.get(word.lower())
        if i is None:
            return []
        return [self.words[j] for j in self.ids[i] if j >= 0]

    def coverage(self) -> float:
        """Share of vocabulary words with at least one candidate."""
        return float(self.mask.any(axis=1).mean()) if self.words else 0.0

    def restricted(self, k: int | None = None, min_cos: float | None = None) -> "CandidateTable":
        """A tighter table without recomputing: at most ``k`` candidates with cosine >= ``min_cos``.

        Only removes candidates (a looser ``k`` or ``min_cos`` than the table's changes nothing);
        entries without a score (nan) are kept by ``min_cos``.
        """
        keep = self.mask.copy()
        params = dict(self.params)
        if min_cos is not None:
            keep &= ~(self.sims < min_cos)  # nan compares False: unscored entries stay
            old = params.get("min_cos")
            params["min_cos"] = min_cos if old is None else max(old, min_cos)
        width = self.k if k is None else max(0, min(k, self.k))
        params["k"] = min(params.get("k", width), width)
        ids, sims = _compact(self.ids, self.sims, keep, width)
        return CandidateTable(self.source, list(self.words), ids, sims, params)


def _compact(ids: np.ndarray, sims: np.ndarray, keep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Move the kept entries of each row to the front (order preserved) and cut to ``k`` columns.

    ``ids``, ``sims``, ``keep``: ``[V, M]``. Returns ``[V, k]`` ids (-1 padding) and sims (nan).
    """
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    out_ids = np.take_along_axis(np.where(keep, ids, -1), order, axis=1)
    out_sims = np.take_along_axis(np.where(keep, sims, np.nan), order, axis=1)
    if out_ids.shape[1] < k:  # a source with fewer than k candidates per word: pad
        pad = ((0, 0), (0, k - out_ids.shape[1]))
        out_ids = np.pad(out_ids, pad, constant_values=-1)
        out_sims = np.pad(out_sims, pad, constant_values=np.nan)
    return out_ids.astype(np.int32), out_sims.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Filters


def _stems(word: str, suffix: str) -> list[str]:
    """Regular stems of ``word`` for ``suffix`` (spelling changes: e-drop, doubled consonant, y/i)."""
    base = word[: -len(suffix)]
    out = [base]
    if suffix in ("ing", "ed"):
        out.append(base + "e")  # making/make; (-ed) liked -> lik + e
        if len(base) >= 2 and base[-1] == base[-2]:
            out.append(base[:-1])  # running/run, stopped/stop
    if suffix == "ed" and base.endswith("i"):
        out.append(base[:-1] + "y")  # tried/try
    if suffix == "ly":
        out += [base + "e", word[:-1] + "e"]  # truly/true, gently/gentle
        if base.endswith("i"):
            out.append(base[:-1] + "y")  # happily/happy
    if suffix == "s":
        if word.endswith("es"):
            out.append(word[:-2])  # boxes/box
        if word.endswith("ies"):
            out.append(word[:-3] + "y")  # stories/story
    return [s for s in out if len(s) >= 3]


def inflection_classes(words: Sequence[str]) -> np.ndarray:
    """``[V]`` int8: 1..4 for -ing, -ed, -ly, -s (regular stem in ``words``), 0 for base forms."""
    vocab = set(words)
    out = np.zeros(len(words), np.int8)
    for i, w in enumerate(words):
        for cls, suffix in enumerate(_SUFFIXES, start=1):
            if suffix == "s" and w.endswith(("ss", "us", "is")):
                continue  # glass, bus, this: not plurals
            if w.endswith(suffix) and any(s in vocab for s in _stems(w, suffix)):
                out[i] = cls
                break
    return out


def _pair_keys(pairs: np.ndarray, n: int) -> np.ndarray:
    """``[2P]`` int64 keys ``a * n + b`` of both orders of ``pairs [P, 2]``."""
    a, b = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    return np.concatenate([a * n + b, b * n + a])


def filter_pool(
    words: Sequence[str], pool_ids: np.ndarray, pool_sims: np.ndarray, k: int, min_cos: float | None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Apply filters 2-6 of the module docstring to ranked candidates.

    ``words``: the vocabulary (already filter 1). ``pool_ids [V, M]`` (-1 = none) and
    ``pool_sims [V, M]`` (nan = no score): candidates, best first. Returns ``ids [V, k]``,
    ``sims [V, k]`` and a dict of the filters used.
    """
    n = len(words)
    rows = np.arange(n)[:, None]
    keep = pool_ids >= 0
    cand = np.where(keep, pool_ids, 0)
    keep &= cand != rows
    if min_cos is not None:
        keep &= ~(pool_sims < min_cos)
    with_wordnet = wordnet_lib.wordnet_available()
    classes = inflection_classes(words)
    adjective = np.zeros(n, bool)
    if with_wordnet:
        adjectives = wordnet_lib.adjectives()
        adjective = np.fromiter((w in adjectives for w in words), bool, n)
    keep &= (classes[rows] == classes[cand]) | (adjective[rows] & adjective[cand])
    if with_wordnet:
        antonyms = _pair_keys(wordnet_lib.antonym_pairs(words), n)
        keep &= ~np.isin(rows * n + cand, antonyms)
    ids, sims = _compact(pool_ids, pool_sims, keep, k)
    filters = ["vocabulary", "self", "min_cos" if min_cos is not None else None,
               "antonyms" if with_wordnet else None, "inflection", "top_k"]
    return ids, sims, {"filters": [f for f in filters if f], "wordnet": with_wordnet}


# ----------------------------------------------------------------------------------------------
# Sources: each gives a vocabulary and ranked candidates (a pool) for filter_pool.


def pool_size(k: int) -> int:
    """How many nearest neighbours a vector source ranks per word before filtering for top-k."""
    return max(128, 2 * k + 28)


def _cache_path(kind: str, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return assets.cache_dir() / "synonyms" / f"{kind}-{digest}.npz"


def _file_identity(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _vector_pool(
    kind: str, identity: list, m: int, load: Callable[[], tuple[list[str], np.ndarray]]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Vocabulary and its ``m`` nearest neighbours (``[V, m]`` ids, sims), cached per source."""
    path = _cache_path(f"pool-{kind}", {"v": TABLE_VERSION, "id": identity, "m": m})
    if path.is_file():
        with np.load(path) as z:
            return [str(w) for w in z["words"]], z["ids"], z["sims"]
    words, vectors = load()
    ids, sims = counterfit.nearest_neighbours(vectors, m)
    counterfit.save_npz_atomic(path, words=np.array(words), ids=ids, sims=sims)
    return words, ids, sims


def _dedupe_vocab(words: Sequence[str], vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Lower-case, keep vocabulary words (filter 1), first occurrence of each."""
    seen: dict[str, int] = {}
    for i, w in enumerate(words):
        w = w.lower()
        if is_vocab_word(w) and w not in seen:
            seen[w] = i
    return list(seen), np.asarray(vectors)[list(seen.values())]


def _lists_to_pool(words: list[str], lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Ranked candidate lists (words) to a ``[V, M]`` id pool with nan sims (unknown words dropped)."""
    index = {w: i for i, w in enumerate(words)}
    width = max((len(c) for c in lists), default=0)
    ids = np.full((len(words), max(width, 1)), -1, np.int32)
    for i, cands in enumerate(lists):
        row = [index[c] for c in cands if c in index]
        ids[i, : len(row)] = row
    return ids, np.full(ids.shape, np.nan, np.float32)


def version_tag() -> str:
    """The version of the candidate rules and of what the sources are built from (table rules,
    counter-fitting, WordNet graph), e.g. ``v1.1.1``: part of every report's name, so that a report
    measured with other candidates is never reused."""
    return f"v{TABLE_VERSION}.{counterfit.CF_VERSION}.{wordnet_lib.GRAPH_VERSION}"


def portable_name(spec: str) -> str:
    """``spec`` as a report's name holds it: a file source by its file's name and content digest
    (``counterfitted:neighbours-3f2a9c01d4e7``), not by its path, so that the same table passed by
    another path (another checkout, another machine) finds the reports it made, and a file changed in
    place never does."""
    kind, _, arg = spec.partition(":")
    if kind != "counterfitted" or not arg:
        return spec
    path = _counterfitted_file(arg)
    return f"counterfitted:{path.stem}-{_content_digest(*_file_identity(path))}"


@functools.lru_cache(maxsize=8)
def _content_digest(resolved: str, size: int, mtime_ns: int) -> str:
    """First 12 hex digits of the SHA-256 of a file (cached per path, size and modification time)."""
    digest = hashlib.sha256()
    with open(resolved, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _bad_format(path: Path, line: int, what: str) -> JaxRobustError:
    return JaxRobustError(
        f"{path}: line {line}: {what} (counterfitted:PATH takes counter-fitted vectors as text, "
        "one word and its numbers per line, or a JSON table {word: [neighbours]})"
    )


def read_vectors_text(path: Path) -> tuple[list[str], np.ndarray]:
    """Word vectors in text form: ``word x1 x2 ... xD`` per line (an optional ``N D`` header).

    Returns the words as written and ``[N, D]`` float32. A line with the wrong field count or a
    non-number is reported by line number.
    """
    words, rows, dim = [], [], None
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                parts = raw.decode("utf-8").split()
            except UnicodeDecodeError:
                raise _bad_format(path, lineno, "not UTF-8 text") from None
            if not parts:
                continue
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec-style header "count dim"
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise _bad_format(path, lineno, f"expected a word followed by numbers, got {parts[0][:40]!r}")
            if len(parts) - 1 != dim:
                raise _bad_format(path, lineno, f"expected a word and {dim} numbers, got {len(parts) - 1} fields")
            try:
                rows.append(np.array(parts[1:], dtype=np.float32))
            except ValueError:
                raise _bad_format(path, lineno, f"{parts[0][:40]!r} is not followed by numbers") from None
            words.append(parts[0])
    if not words:
        raise JaxRobustError(f"{path} holds no word vectors")
    return words, np.stack(rows)


def _json_line(text: str, key: str) -> int:
    pos = text.find(json.dumps(key, ensure_ascii=False))
    if pos < 0:
        pos = text.find(json.dumps(key))  # the file may escape non-ASCII characters
    return text.count("\n", 0, max(pos, 0)) + 1


def read_neighbour_json(path: Path) -> dict[str, list[str]]:
    """A JSON neighbour table ``{word: [neighbour, ...]}`` (Jia et al. 2019), checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise _bad_format(path, 1, f"not UTF-8 text ({e.reason})") from None
    try:
        table = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad_format(path, e.lineno, f"not valid JSON: {e.msg}") from None
    if not isinstance(table, dict):
        raise _bad_format(path, 1, f"expected a JSON object {{word: [neighbours]}}, got a {type(table).__name__}")
    for key, value in table.items():
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise _bad_format(path, _json_line(text, key), f"the neighbours of {key!r} are not a list of words")
    return table


def _sniff_json(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"{")


def _counterfitted_file(arg: str) -> Path:
    """The file of ``counterfitted:arg``, or the one-line error of an empty or missing one."""
    if not arg:
        raise JaxRobustError("counterfitted:PATH needs a file: counterfitted:/path/to/vectors.txt or neighbours.json")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise JaxRobustError(f"counterfitted: no such file: {path}")
    return path


def _counterfitted_source(arg: str, k: int, min_cos: float):
    path = _counterfitted_file(arg)
    identity = _file_identity(path)
    if _sniff_json(path):

        def json_pool():
            lists: dict[str, list[str]] = {}
            for key, neighbours in read_neighbour_json(path).items():
                key = key.lower()
                if is_vocab_word(key) and key not in lists:
                    lists[key] = [w.lower() for w in neighbours]
            words = list(dict.fromkeys([*lists, *(w for ns in lists.values() for w in ns if is_vocab_word(w))]))
            return (words, *_lists_to_pool(words, [lists.get(w, []) for w in words]))

        return "jia-json", identity, None, json_pool

    def load():
        return _dedupe_vocab(*read_vectors_text(path))

    return "vectors", identity, min_cos, lambda: _vector_pool("counterfitted", identity, pool_size(k), load)


def _glove_cf_source(k: int, min_cos: float):
    identity = ["glove-cf", counterfit.CF_VERSION, counterfit.GLOVE_VOCAB]
    return "vectors", identity, min_cos, lambda: _vector_pool("glove-cf", identity, pool_size(k), counterfit.glove_cf)


def _wordnet_source(k: int, min_cos: float):
    def pool():
        graph = wordnet_lib.lemma_graph()
        words = sorted(w for w in graph.senses if is_vocab_word(w))
        return (words, *_lists_to_pool(words, [graph.synonyms(w) for w in words]))

    return "wordnet", ["wordnet", wordnet_lib.GRAPH_VERSION], None, pool


# A pair's synset must be among the 3 commonest senses (per part of speech) of both words: chosen
# with bench/synonym_quality.py (any sense brings rare ones, runs -> tests; 1 halves the coverage).
WORDNET_CF_RANK = 3


def wordnet_cf_lists(words: Sequence[str], max_rank: int = WORDNET_CF_RANK) -> list[list[str]]:
    """For each of ``words``: its WordNet synonyms among ``words``, inflected as it is.

    A word that is itself a WordNet lemma takes synonym lemmas (boring -> dull); an inflected form
    takes the inflected forms, among ``words``, of its base's synonyms (films -> movies), so that
    the inflection filter can match the suffix. Synonyms: words sharing a synset, or an adjective
    head and its satellite, among the ``max_rank`` commonest senses of both.
    """
    graph = wordnet_lib.lemma_graph()
    neighbours: dict[str, set[str]] = {}
    for a, b in graph.synonym_pairs(max_rank):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    bases = {w: wordnet_lib.base_forms(w) for w in words}
    forms: dict[str, set[str]] = {}  # lemma -> the vocabulary words that inflect it
    for w, bs in bases.items():
        for b in bs:
            forms.setdefault(b, set()).add(w)
    lists = []
    for w in words:
        synonyms = set().union(*(neighbours.get(b, ()) for b in bases[w])) - bases[w]
        if w in graph.senses:
            found = {c for c in synonyms if c in bases}
        else:
            found = {c for lemma in synonyms for c in forms.get(lemma, ()) if c not in graph.senses}
        lists.append(sorted(c for c in found if not bases[c] & bases[w]))
    return lists


def _wordnet_cf_source(k: int, min_cos: float):
    identity = ["wordnet-cf", WORDNET_CF_RANK, wordnet_lib.GRAPH_VERSION, counterfit.CF_VERSION, counterfit.GLOVE_VOCAB]

    def pool():
        path = _cache_path("pool-wordnet-cf", {"v": TABLE_VERSION, "id": identity})
        if path.is_file():
            with np.load(path) as z:
                return [str(w) for w in z["words"]], z["ids"], z["sims"]
        words, vectors = counterfit.glove_cf()
        ids, _ = _lists_to_pool(words, wordnet_cf_lists(words))
        unit = counterfit.unit_rows(np.asarray(vectors, np.float32))
        sims = np.where(ids >= 0, np.einsum("vd,vmd->vm", unit, unit[np.maximum(ids, 0)]), np.nan).astype(np.float32)
        order = np.argsort(np.where(ids >= 0, -sims, np.inf), axis=1, kind="stable")  # best first, padding last
        ids, sims = np.take_along_axis(ids, order, 1), np.take_along_axis(sims, order, 1)
        counterfit.save_npz_atomic(path, words=np.array(words), ids=ids, sims=sims)
        return words, ids, sims

    return "vectors", identity, min_cos, pool


def whole_word_tokens(vocab: dict[str, int], special: set[str], scheme: str | None = None) -> dict[str, int]:
    """Whole-word tokens of a tokenizer vocabulary as ``word -> token id`` (vocabulary words only):
    the tokens that spell a word where it starts after a space (:func:`conventions.word_of`:
    WordPiece's pieces without ``##``; ``Ġword`` of byte-level BPE and ``▁word`` of SentencePiece,
    the word being the rest), special tokens left out. ``scheme``: the tokenizer's
    (:func:`conventions.conventions`), else guessed from the vocabulary."""
    scheme = scheme or conventions.scheme_of(vocab)
    out: dict[str, int] = {}
    for token, i in sorted(vocab.items(), key=lambda item: item[1]):
        word = None if token in special else conventions.word_of(scheme, token)
        if word is not None and is_vocab_word(word) and word not in out:
            out[word] = i
    return out


def read_word_embeddings(path: Path) -> np.ndarray:
    """The input word-embedding matrix ``[vocab, hidden]`` float32 of a model directory.

    Reads only that tensor (``[bert.|roberta.|mpnet.]embeddings.word_embeddings.weight``).
    """
    from safetensors import SafetensorError, safe_open

    from jaxrobust.models.loading import weight_files

    suffix = "embeddings.word_embeddings.weight"
    for f in weight_files(path):
        try:
            with safe_open(str(f), framework="numpy") as sf:
                for key in sf.keys():
                    if key == suffix or key.endswith("." + suffix):
                        return np.asarray(sf.get_tensor(key), np.float32)
        except (SafetensorError, OSError, ValueError, TypeError) as e:
            raise JaxRobustError(f"cannot read {f}: {e}") from e
    raise JaxRobustError(f"no *{suffix} tensor in the safetensors of {path}")


def _embedding_source(ref: str, k: int, min_cos: float):
    if not ref:
        raise JaxRobustError("embedding:MODEL needs a model: a directory, bundle:ID or hub id")
    path = assets.resolve(ref)
    # The weights and the tokenizer files decide the table: any change rebuilds it. (Listed here
    # without jaxrobust.models.loading, whose imports would cost more than a cached load.)
    tokenizer_files = [path / n for n in ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt")]
    files = [*sorted(path.glob("*.safetensors")), *(f for f in tokenizer_files if f.is_file())]
    identity = ["embedding", *[part for f in files for part in _file_identity(f)]]

    def load():
        from jaxrobust.models.loading import load_tokenizer

        tok = load_tokenizer(path)
        words = whole_word_tokens(tok.get_vocab(), set(tok.all_special_tokens), conventions.conventions(tok).scheme)
        matrix = read_word_embeddings(path)
        token_ids = np.array(list(words.values()), np.int64)
        if token_ids.size and token_ids.max() >= matrix.shape[0]:
            raise JaxRobustError(f"{path}: the tokenizer has ids beyond the {matrix.shape[0]}-row embedding matrix")
        return list(words), matrix[token_ids]

    return "vectors", identity, min_cos, lambda: _vector_pool("embedding", identity, pool_size(k), load)


def _source(spec: str, k: int, min_cos: float):
    """``(format, identity, min_cos or None, pool)`` of a spec; ``pool()`` gives the vocabulary and
    its ranked candidates ``(words, [V, M] ids, [V, M] sims)`` (work deferred until needed)."""
    kind, _, arg = spec.partition(":")
    if spec == "glove-cf":
        return _glove_cf_source(k, min_cos)
    if spec == "wordnet":
        return _wordnet_source(k, min_cos)
    if spec == "wordnet-cf":
        return _wordnet_cf_source(k, min_cos)
    if kind == "counterfitted":
        return _counterfitted_source(arg, k, min_cos)
    if kind == "embedding":
        return _embedding_source(arg, k, min_cos)
    raise JaxRobustError(f"unknown synonym source {spec!r}; known sources: {', '.join(SOURCES)}")


def check_source(spec: str, k: int, min_cos: float) -> None:
    """Raise the one-line error of an unknown source or a missing file; loads nothing (the pool is deferred)."""
    _source(spec, k, float(min_cos))


# ----------------------------------------------------------------------------------------------
# Public entry points


def load_synonyms(spec: str = "wordnet-cf", *, k: int = 50, min_cos: float = 0.5) -> CandidateTable:
    """The candidate table of ``spec`` (see the module docstring), at most ``k`` per word with
    cosine >= ``min_cos`` (where the source has scores). Built once, then read from the cache."""
    if not isinstance(k, numbers.Integral) or k < 1:
        raise JaxRobustError(f"k must be a positive integer, got {k!r}")
    if not (isinstance(min_cos, numbers.Real) and -1.0 <= min_cos <= 1.0):
        raise JaxRobustError(f"min_cos must be a cosine in [-1, 1], got {min_cos!r}")
    k, spec = int(k), spec.strip()
    form, identity, cos, pool = _source(spec, k, float(min_cos))
    key = {"v": TABLE_VERSION, "id": identity, "k": k, "min_cos": cos}
    path = _cache_path(f"table-{spec.partition(':')[0]}", key)
    if path.is_file():
        with np.load(path) as z:
            table = CandidateTable(spec, [str(w) for w in z["words"]], z["ids"], z["sims"], json.loads(str(z["params"])))
        # A table built without WordNet lacks the antonym filter: rebuild once WordNet is there.
        # (Asked only then: finding WordNet imports nltk, which takes longer than the whole load.)
        if table.params.get("wordnet") or not wordnet_lib.wordnet_available():
            return _usable(table)
    words, pool_ids, pool_sims = pool()
    vocab = np.array([is_vocab_word(w) for w in words] + [False])  # the last entry: padding id -1
    if not (vocab[:-1] & (vocab[pool_ids] & (pool_ids >= 0)).any(1)).any():
        raise _no_usable_entries(spec, k, cos)  # found before the filters need WordNet
    ids, sims, used = filter_pool(words, pool_ids, pool_sims, k, cos)
    params = {"k": k, "min_cos": cos, "format": form, **used, "version": TABLE_VERSION}
    if form == "vectors":
        params["pool"] = pool_ids.shape[1]
    table = CandidateTable(spec, list(words), ids, sims, params)
    if not _in_temp_dir(spec):  # a temporary file will be gone: its table would only fill the cache
        counterfit.save_npz_atomic(
            path, words=np.array(table.words), ids=table.ids, sims=table.sims, params=np.array(json.dumps(params))
        )
    return _usable(table)


def _in_temp_dir(spec: str) -> bool:
    """Whether ``spec`` is a file source (``counterfitted:PATH``) in the system's temporary folder."""
    kind, _, arg = spec.partition(":")
    if kind != "counterfitted" or not arg:
        return False
    return Path(arg).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())


def _usable(table: CandidateTable) -> CandidateTable:
    """``table``, unless no word has a candidate (an attack with it would change nothing)."""
    if not table.mask.any():
        raise _no_usable_entries(table.source, table.params.get("k"), table.params.get("min_cos"))
    return table


def _no_usable_entries(source: str, k, cos) -> JaxRobustError:
    return JaxRobustError(
        f"{source} has no usable entries: no word (two letters or more, not a stop word) keeps a candidate "
        f"after the filters (top {k}" + ("" if cos is None else f", cosine >= {cos:g}") + ")"
    )


def describe(
    table: CandidateTable, samples: Sequence[str] = ("good", "bad", "movie", "funny", "boring", "terrible")
) -> str:
    """A few lines on ``table``: size, settings, coverage and the candidates of ``samples``."""
    counts = table.mask.sum(axis=1)
    covered = counts[counts > 0]
    p = table.params
    cos = "n/a (no scores)" if p.get("min_cos") is None else f"{p['min_cos']:g}"
    lines = [
        f"source: {table.source} ({p.get('format', '?')})"
        + (f": {ABOUT[table.source]}" if table.source in ABOUT else ""),
        f"vocabulary: {len(table.words):,} words; K = {table.k} (k = {p.get('k')}, min_cos = {cos})",
        f"filters: {', '.join(p.get('filters', []))}",
        f"coverage: {table.coverage():.1%} of words have a candidate; "
        f"{covered.mean() if covered.size else 0:.1f} candidates per covered word on average",
    ]
    for word in samples:
        w = word.lower()
        if w in STOP_WORDS:
            lines.append(f"  {word}: (stop word: never substituted)")
            continue
        i = table.index.get(w)
        if i is None:
            lines.append(f"  {word}: (not in the vocabulary)")
            continue
        shown = [
            table.words[j] if math.isnan(s) else f"{table.words[j]} {s:.2f}"
            for j, s in zip(table.ids[i], table.sims[i], strict=True)
            if j >= 0
        ]
        lines.append(f"  {word}: {', '.join(shown) if shown else '(no candidates)'}")
    return "\n".join(lines)
