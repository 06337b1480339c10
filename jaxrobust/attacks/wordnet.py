"""Find WordNet 3.0 for nltk on a machine without nltk's own data, and read its lemma graph.

WordNet is the synonym source of PWWS, the antonym filter of every candidate table and the
constraint source of the counter-fitted GloVe vectors. nltk's reader usually gets its data from
``nltk.download('wordnet')``, which needs the internet; Debian ships the same database in the
packages ``wordnet-base`` and ``wordnet-sense-index`` (``/usr/share/wordnet``, installed by
``make assets``). nltk 3.10 reads those files after three fixes:

1. the files are COPIED (not symlinked: nltk resolves paths under its data root) into
   ``<root>/corpora/wordnet/``;
2. the ``lexnames`` table, which Debian leaves out, is written (45 lines, the standard WordNet 3.0
   lexicographer files: number, name, syntactic category);
3. ``<root>`` is put first on ``nltk.data.path``.

:func:`ensure_wordnet` looks, in order, for nltk's own data, Debian's files (prepared under
``$JAXROBUST_CACHE/nltk_data``), then tries ``nltk.download`` (failing fast offline), and otherwise
raises one :class:`JaxRobustError` line saying how to install it. :func:`prepare_nltk_data` writes a
complete offline ``NLTK_DATA`` directory (WordNet + the English stop-word list) that other tools,
such as a TextAttack benchmark, can be pointed at.

For the synonym tables, WordNet is read once into a :class:`LemmaGraph` (cached as JSON): each
word's senses in frequency order, the synsets' words, adjective clusters and antonym links. It
gives the synonym and antonym pairs of counter-fitting and the antonym filter. Pairs are limited by
sense rank (:data:`SYNONYM_RANK`, :data:`ANTONYM_RANK`), because WordNet's rare senses join
unrelated common words (good is a synonym of "full" and "ripe" in rare senses).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from jaxrobust.assets import cache_dir
from jaxrobust.errors import JaxRobustError
from jaxrobust.io import write_text_atomic

DEBIAN_WORDNET = Path("/usr/share/wordnet")
INSTALL_HINT = (
    "run `make assets` or `apt-get install wordnet-base wordnet-sense-index` "
    "(or, online, `python -m nltk.downloader wordnet`)"
)

# The WordNet 3.0 lexicographer files in number order (see lexnames(5WN)); the third column of the
# table is the syntactic category: 1 noun, 2 verb, 3 adjective, 4 adverb.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

# Sense-rank limits for the pairs used by counter-fitting and the antonym filter (see LemmaGraph):
# synonyms only through each word's commonest sense per part of speech (WordNet's rarer senses chain
# unrelated words together: good ~ full ~ ...); indirect antonyms through its two commonest.
SYNONYM_RANK = 1
ANTONYM_RANK = 2

# Files nltk's reader needs; a Debian install without them is incomplete.
_REQUIRED = ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb", "index.adj", "index.adv")


def lexnames_text() -> str:
    """The 45-line ``lexnames`` file: ``NN<tab>name<tab>category``."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def debian_wordnet_present(src: Path = DEBIAN_WORDNET) -> bool:
    return all((src / name).is_file() for name in _REQUIRED)


def _copy_wordnet(src: Path, dest: Path) -> None:
    """Copy Debian's database files (top-level regular files) into ``dest`` and add ``lexnames``.

    The sub-directories (``bin``, ``pixmaps``, ``wnres``) hold the Tk browser, not data.
    """
    dest.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        if f.is_file():
            shutil.copyfile(f, dest / f.name)  # follows links: nltk gets real files
    (dest / "lexnames").write_text(lexnames_text())
    license_file = Path("/usr/share/doc/wordnet-base/copyright")
    if license_file.is_file():
        shutil.copyfile(license_file, dest / "LICENSE")


def _wordnet_complete(directory: Path) -> bool:
    return (directory / "lexnames").is_file() and all((directory / n).is_file() for n in _REQUIRED)


def prepare_nltk_data(root: Path, src: Path = DEBIAN_WORDNET) -> Path:
    """Write an offline ``NLTK_DATA`` directory at ``root`` and return ``root``.

    Layout: ``corpora/wordnet/`` (Debian's WordNet 3.0 + ``lexnames``) and
    ``corpora/stopwords/english`` (:data:`~jaxrobust.attacks.synonyms.STOP_WORDS`, one per line, in
    nltk's order). Idempotent; the WordNet directory appears complete or not at all.
    """
    from jaxrobust.attacks.synonyms import STOP_WORD_LIST  # synonyms imports this module

    root = Path(root)
    target = root / "corpora" / "wordnet"
    if not _wordnet_complete(target):
        if not debian_wordnet_present(src):
            raise JaxRobustError(f"no WordNet database in {src}: {INSTALL_HINT}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
        try:
            _copy_wordnet(src, staging / "wordnet")
            shutil.rmtree(target, ignore_errors=True)  # an incomplete copy from an older layout
            try:
                os.replace(staging / "wordnet", target)
            except OSError:
                if not _wordnet_complete(target):  # else another process just published it
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    stop_file = root / "corpora" / "stopwords" / "english"
    text = "".join(w + "\n" for w in STOP_WORD_LIST)
    if not stop_file.is_file() or stop_file.read_text() != text:
        write_text_atomic(stop_file, text)
    return root


def nltk_data_root() -> Path:
    return cache_dir() / "nltk_data"


def _add_nltk_path(root: Path) -> None:
    import nltk

    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))


def _wordnet_root():
    """nltk's path to the WordNet files (``LookupError`` if it has none)."""
    import nltk

    return nltk.data.find("corpora/wordnet")  # also finds corpora/wordnet.zip


def _nltk_has_wordnet() -> bool:
    try:
        _wordnet_root()
    except LookupError:
        return False
    return True


def _try_download(root: Path, timeout_s: float = 10.0) -> bool:
    """``nltk.download('wordnet')`` into ``root``; False (quickly) when offline or it fails."""
    import nltk

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # nltk's urlopen has no timeout of its own
    try:
        # nltk prints its own failure lines even when quiet; the caller's error says it once
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return bool(nltk.download("wordnet", download_dir=str(root), quiet=True, raise_on_error=True))
    except Exception:  # noqa: BLE001 - any network or server failure means "not available"
        return False
    finally:
        socket.setdefaulttimeout(old)


@functools.cache
def _find() -> str | None:
    """Where nltk's WordNet comes from: ``nltk``, ``debian``, ``download`` or None (nowhere).

    Cached, so that an offline machine without WordNet tries the download once per process.
    """
    if _nltk_has_wordnet():
        return "nltk"
    root = nltk_data_root()
    if debian_wordnet_present():
        _add_nltk_path(prepare_nltk_data(root))
        return "debian"
    if _try_download(root):
        _add_nltk_path(root)
        if _nltk_has_wordnet():
            return "download"
    return None


def _locate() -> str:
    source = _find()
    if source is None:
        raise JaxRobustError(f"WordNet is not installed: {INSTALL_HINT}")
    return source


def _load_wordnet():
    """nltk's WordNet reader, English only: nltk 3.10's reader maps every synset to another WordNet
    version's (for the multilingual Open Multilingual WordNet) while it loads -- reading the sense
    index twice, more than half of its loading time -- which nothing here uses."""
    import warnings

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None  # no mapping: the multilingual functions are not used

    _locate()
    with warnings.catch_warnings():  # "The multilingual functions are not available": as meant
        warnings.simplefilter("ignore")
        return EnglishWordNet(_wordnet_root(), None)


class _Loading:
    """WordNet read by one background thread: nltk parses its index for several seconds, which an
    attack can overlap (its validity section needs WordNet only at the end); the reader is touched
    by that thread alone until it is loaded. A daemon thread: a command that stops early does not
    wait for it."""

    def __init__(self):
        self.done = threading.Event()
        self.result, self.error = None, None
        threading.Thread(target=self._run, name="wordnet", daemon=True).start()

    def _run(self):
        try:
            self.result = _load_wordnet()
        except BaseException as e:  # noqa: BLE001 - handed to the thread that waits for it
            self.error = e
        finally:
            self.done.set()

    def get(self):
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


_loading: _Loading | None = None
_loading_lock = threading.Lock()


def prefetch_wordnet(only_local: bool = False) -> None:
    """Start reading WordNet in the background, if not begun yet (:func:`ensure_wordnet` waits for
    it). ``only_local``: only if Debian's files are there, so that the thread never tries a
    download (nltk's downloader silences the process's output while it runs)."""
    global _loading
    with _loading_lock:
        if _loading is None and (not only_local or debian_wordnet_present()):
            import nltk  # noqa: F401 - imported here: two threads importing one package can break it

            _loading = _Loading()


def ensure_wordnet():
    """nltk's WordNet corpus reader, loaded (see the module docstring for where it is found)."""
    prefetch_wordnet()
    return _loading.get()


def wordnet_source() -> str:
    """``nltk``, ``debian`` or ``download``: where :func:`ensure_wordnet` found the data."""
    return _locate()


def wordnet_available() -> bool:
    """Whether WordNet can be had (without raising); used by optional filters."""
    try:
        _locate()
    except JaxRobustError:
        return False
    return True


def is_single_word(name: str) -> bool:
    """A WordNet lemma that is one alphabetic word (``ice_cream`` and ``a-ok`` are not)."""
    return name.isascii() and name.isalpha()


@dataclasses.dataclass(frozen=True)
class LemmaGraph:
    """WordNet's single-word lemmas (lower-cased) with their senses, synsets and antonyms.

    ``senses[w]``: ``w``'s synsets as ``(synset name, rank)``, most frequent first (WordNet orders
    a word's senses by corpus frequency); ``rank`` counts within the part of speech (adjective
    satellites count as adjectives): 0 = the word's commonest sense of that part of speech.
    ``members[s]``: the single-word lemmas of synset ``s``, in WordNet's order.
    ``satellites[h]``: the satellite synsets of adjective head synset ``h`` (its "similar to"s).
    ``antonym_synsets``: synset pairs joined by a direct antonym link, both orders.
    ``direct_antonyms``: the word pairs of those links, both orders.
    """

    senses: dict[str, tuple[tuple[str, int], ...]]
    members: dict[str, tuple[str, ...]]
    satellites: dict[str, tuple[str, ...]]
    antonym_synsets: frozenset[tuple[str, str]]
    direct_antonyms: frozenset[tuple[str, str]]

    def synonyms(self, word: str) -> list[str]:
        """The lemmas sharing a synset with ``word``, commonest sense first, ``word`` excluded."""
        seen: dict[str, None] = {}  # keeps first-seen order, drops repeats
        for synset, _ in self.senses.get(word, ()):
            for other in self.members[synset]:
                if other != word:
                    seen.setdefault(other, None)
        return list(seen)

    @functools.cached_property
    def adjectives(self) -> frozenset[str]:
        """The words with an adjective sense (``x.a.01`` or satellite ``x.s.01``)."""
        return frozenset(w for w, senses in self.senses.items() if any(s.split(".")[-2] in ("a", "s") for s, _ in senses))

    @functools.cached_property
    def _rank(self) -> dict[tuple[str, str], int]:
        return {(w, s): r for w, senses in self.senses.items() for s, r in senses}

    def _common(self, synset: str, max_rank: int | None) -> list[str]:
        """The members of ``synset`` for which it is among their ``max_rank`` commonest senses."""
        # a member nltk's lemma lookup does not lead back to its synset counts as a rare sense
        return [
            w for w in self.members[synset] if max_rank is None or self._rank.get((w, synset), max_rank) < max_rank
        ]

    def synonym_pairs(self, max_rank: int | None = None) -> set[tuple[str, str]]:
        """Word pairs (a < b) in one synset, or in an adjective head and one of its satellites,
        where that synset is among the ``max_rank`` commonest senses of each word (None: any)."""
        pairs = set()

        def add(left: list[str], right: list[str]) -> None:
            pairs.update((min(a, b), max(a, b)) for a in left for b in right if a != b)

        for synset in self.members:
            common = self._common(synset, max_rank)
            add(common, common)
        for head, sats in self.satellites.items():
            for sat in sats:
                add(self._common(head, max_rank), self._common(sat, max_rank))
        return pairs

    def antonyms(self, max_rank: int | None = None) -> frozenset[tuple[str, str]]:
        """Direct antonyms plus WordNet's indirect ones, both orders.

        WordNet links antonyms between adjective *head* synsets (good/bad); the satellites of a head
        (superb, satisfactory / awful, dreadful) are antonyms of the other head's cluster by
        WordNet's design, and those are the pairs that matter for sentiment words. A word joins a
        cluster's indirect antonyms only where that synset is among its ``max_rank`` commonest
        senses (None: any): a rare sense (good as in "full") would otherwise bring in noise
        (good/empty). Direct antonyms count at any sense.
        """
        pairs = set(self.direct_antonyms)
        for a, b in self.antonym_synsets:
            if a in self.satellites or b in self.satellites:  # adjective heads with clusters
                left = {w for s in (a, *self.satellites.get(a, ())) for w in self._common(s, max_rank)}
                right = {w for s in (b, *self.satellites.get(b, ())) for w in self._common(s, max_rank)}
                pairs.update((x, y) for x in left for y in right if x != y)
                pairs.update((y, x) for x in left for y in right if x != y)
        return frozenset(pairs)


def _add_synset(synset, members: dict, satellites: dict) -> None:
    """Record a synset's single-word lemmas and, for a satellite, its head's satellite list."""
    if synset.name() in members:
        return
    members[synset.name()] = tuple(dict.fromkeys(n.lower() for n in synset.lemma_names() if is_single_word(n)))
    if synset.pos() == "s":
        for head in synset.similar_tos():
            satellites.setdefault(head.name(), []).append(synset.name())
            _add_synset(head, members, satellites)


GRAPH_VERSION = 1  # bump when LemmaGraph's content changes: cached graphs are then rebuilt


def _graph_cache() -> Path:
    return cache_dir() / "synonyms" / f"wordnet-graph-v{GRAPH_VERSION}-{wordnet_source()}.json"


def _build_graph() -> LemmaGraph:
    wn = ensure_wordnet()
    senses: dict[str, tuple[tuple[str, int], ...]] = {}
    members: dict[str, tuple[str, ...]] = {}
    satellites: dict[str, list[str]] = {}
    ant_synsets: set[tuple[str, str]] = set()
    ant_words: set[tuple[str, str]] = set()
    for word in sorted(n for n in wn.all_lemma_names() if is_single_word(n)):  # lower-case already
        counts: dict[str, int] = {}
        own = []
        # wn.lemmas(word) lists the word's own lemmas sense by sense, most frequent sense first
        # (unlike wn.synsets, it does not add the senses of a morphological base: better -> good).
        for lemma in wn.lemmas(word):
            synset = lemma.synset()
            pos = "a" if synset.pos() == "s" else synset.pos()
            own.append((synset.name(), counts.setdefault(pos, 0)))
            counts[pos] += 1
            _add_synset(synset, members, satellites)
            for ant in lemma.antonyms():
                ant_synsets.update({(synset.name(), ant.synset().name()), (ant.synset().name(), synset.name())})
                _add_synset(ant.synset(), members, satellites)
                if is_single_word(ant.name()):
                    ant_words.update({(word, ant.name().lower()), (ant.name().lower(), word)})
        senses[word] = tuple(own)
    # satellites were appended in visiting order; sort for a deterministic graph
    sats = {h: tuple(sorted(set(s))) for h, s in satellites.items()}
    return LemmaGraph(senses, members, sats, frozenset(ant_synsets), frozenset(ant_words))


def _graph_to_json(g: LemmaGraph) -> str:
    return json.dumps({
        "senses": g.senses,
        "members": g.members,
        "satellites": g.satellites,
        "antonym_synsets": sorted(g.antonym_synsets),
        "direct_antonyms": sorted(g.direct_antonyms),
    })


def _graph_from_json(text: str) -> LemmaGraph:
    d = json.loads(text)
    return LemmaGraph(
        senses={w: tuple((s, r) for s, r in v) for w, v in d["senses"].items()},
        members={s: tuple(v) for s, v in d["members"].items()},
        satellites={h: tuple(v) for h, v in d["satellites"].items()},
        antonym_synsets=frozenset(map(tuple, d["antonym_synsets"])),
        direct_antonyms=frozenset(map(tuple, d["direct_antonyms"])),
    )


@functools.cache
def lemma_graph() -> LemmaGraph:
    """The :class:`LemmaGraph` of the WordNet nltk reads (77,503 single words).

    Walking WordNet with nltk takes about half a minute, so the graph is cached as JSON under
    ``$JAXROBUST_CACHE/synonyms/`` and read back in about a second.
    """
    path = _graph_cache()
    if path.is_file():
        try:
            return _graph_from_json(path.read_text())
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache file: rebuild it
    graph = _build_graph()
    write_text_atomic(path, _graph_to_json(graph))
    return graph


def _pairs_to_ids(pairs: Iterable[tuple[str, str]], words: Sequence[str]) -> np.ndarray:
    """``[P, 2]`` int32 ids into ``words`` of the pairs with both words present, each once (i < j)."""
    index = {w: i for i, w in enumerate(words)}
    ids = {
        (min(index[a], index[b]), max(index[a], index[b]))
        for a, b in pairs
        if a in index and b in index and a != b
    }
    return np.array(sorted(ids), dtype=np.int32).reshape(-1, 2)


def synonym_pairs(words: Sequence[str], max_rank: int | None = SYNONYM_RANK) -> np.ndarray:
    """``[P, 2]`` int32 ids into ``words``: pairs that share a WordNet synset, or an adjective head
    synset and one of its satellites (good / superb).

    ``max_rank``: only synsets among the ``max_rank`` commonest senses (per part of speech) of both
    words; ``None`` = any sense.
    """
    return _pairs_to_ids(lemma_graph().synonym_pairs(max_rank), words)


def antonym_pairs(words: Sequence[str], max_rank: int | None = ANTONYM_RANK) -> np.ndarray:
    """``[P, 2]`` int32 ids into ``words``: WordNet antonyms, direct and indirect (see
    :meth:`LemmaGraph.antonyms`); ``max_rank`` limits the indirect ones."""
    return _pairs_to_ids(lemma_graph().antonyms(max_rank), words)


def adjectives() -> frozenset[str]:
    """Single words WordNet lists as adjectives in some sense (the inflection filter uses them)."""
    return lemma_graph().adjectives


@functools.cache
def _synset_lemmas(word: str) -> frozenset[str]:
    return frozenset(n.lower() for s in ensure_wordnet().synsets(word) for n in s.lemma_names() if is_single_word(n))


@functools.cache
def base_forms(word: str) -> frozenset[str]:
    """``word`` and its WordNet base form under each part of speech (films -> film, took -> take)."""
    wn = ensure_wordnet()
    return frozenset({word} | {b for pos in "nvar" if (b := wn.morphy(word, pos))})


def are_synonyms(word: str, other: str) -> bool:
    """Whether WordNet puts ``other`` in a synset of ``word`` (any sense; inflections reduced by
    morphy on both sides: movies / films). The thesaurus check of candidates and reports."""
    return bool(base_forms(other.lower()) & _synset_lemmas(word.lower()))

