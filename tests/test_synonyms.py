"""Synonym candidate tables: sources, formats, filters and counter-fitting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from jaxrobust.attacks import counterfit
from jaxrobust.attacks import synonyms as syn
from jaxrobust.attacks import wordnet as wn_lib
from jaxrobust.errors import JaxRobustError

# Jia et al.'s table lies in the shared/ folder beside the checkout (CI puts a copy of it there).
JIA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "counterfitted_neighbors.json"


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """Tables of test-written files go to a temporary cache. WordNet's graph is read (or built)
    from the real cache first; it then stays loaded for the rest of the session."""
    wn_lib.lemma_graph()
    monkeypatch.setenv("JAXROBUST_CACHE", str(tmp_path / "cache"))
    return tmp_path


def check_invariants(table: syn.CandidateTable) -> None:
    """Shapes, padding after real candidates, ids in range, no self / stop words / non-words."""
    v, k = table.ids.shape
    assert table.sims.shape == (v, k) and v == len(table.words) == len(table.index)
    assert np.array_equal(table.mask, table.ids >= 0)
    mask = table.mask
    assert not (~mask[:, :-1] & mask[:, 1:]).any(), "padding must follow the real candidates"
    assert table.ids.max() < v and table.ids.min() >= -1
    assert np.isnan(table.sims[~mask]).all()
    assert not (table.ids == np.arange(v)[:, None]).any(), "a word is its own candidate"
    assert all(syn.is_vocab_word(w) for w in table.words)
    assert not set(table.words) & syn.STOP_WORDS
    if table.params["min_cos"] is not None:
        scored = mask & ~np.isnan(table.sims)
        assert (table.sims[scored] >= table.params["min_cos"] - 1e-6).all()
        both = scored[:, 1:] & scored[:, :-1]
        assert (np.diff(table.sims, axis=1)[both] <= 1e-6).all(), "not best first"


def test_stop_words_are_nltks_list():
    assert len(syn.STOP_WORD_LIST) == len(syn.STOP_WORDS) == 179
    assert {"the", "not", "very", "wouldn't", "should've", "ma"} <= syn.STOP_WORDS
    assert not {"good", "film", "never"} & syn.STOP_WORDS


def test_inflection_classes():
    words = ["walk", "walking", "make", "making", "run", "running", "like", "liked", "try", "tried",
             "quick", "quickly", "happy", "happily", "film", "films", "story", "stories", "glass", "thing", "need"]
    cls = dict(zip(words, syn.inflection_classes(words), strict=True))
    ing, ed, ly, s = 1, 2, 3, 4
    assert [cls[w] for w in ("walking", "making", "running")] == [ing] * 3
    assert [cls[w] for w in ("liked", "tried")] == [ed] * 2
    assert [cls[w] for w in ("quickly", "happily")] == [ly] * 2
    assert [cls[w] for w in ("films", "stories")] == [s] * 2
    # no regular stem in the vocabulary, or too short: base forms
    assert [cls[w] for w in ("walk", "glass", "thing", "need", "film")] == [0] * 5


# ----------------------------------------------------------------------------------------------
# counterfitted:PATH, the Jia et al. neighbour table


@pytest.mark.skipif(not JIA.is_file(), reason=f"{JIA} not present (only used by tests)")
def test_jia_table():
    raw = json.loads(JIA.read_text())
    assert len(raw) == 49_975 and sum(1 for v in raw.values() if v) == 25_591
    table = syn.load_synonyms(f"counterfitted:{JIA}", k=8)
    check_invariants(table)
    assert table.params["format"] == "jia-json" and table.params["min_cos"] is None
    assert np.isnan(table.sims).all()
    covered = int(table.mask.any(axis=1).sum())
    # stop words, numbers and contractions go; 'the', 'not' had no neighbours anyway
    assert 20_000 < covered < 25_591 and 0.4 < table.coverage() < 0.7
    assert table.k == 8 and table.mask.sum(axis=1).max() == 8
    assert {"nice", "decent"} <= set(table.candidates("good"))
    assert table.candidates("GOOD") == table.candidates("good")
    assert "film" in table.candidates("movie")
    assert not {"films", "movies"} & set(table.candidates("movie")), "singular -> plural kept"
    assert "bore" not in table.candidates("boring"), "-ing word got a base verb"
    assert {"dull", "tedious"} & set(table.candidates("boring")), "adjectives lost for an -ing adjective"
    assert table.candidates("the") == [] and table.candidates("qwertyuiop") == []
    # everything the table keeps is in the raw file
    for word in ("good", "bad", "movie", "terrible"):
        assert set(table.candidates(word)) <= {w.lower() for w in raw[word]}


def test_restricted_only_removes():
    words = ["alpha", "beta", "gamma", "delta"]
    ids = np.array([[1, 2, 3], [0, 2, -1], [-1, -1, -1], [2, 0, 1]], np.int32)
    sims = np.array([[0.9, 0.7, 0.6], [0.95, 0.5, np.nan], [np.nan] * 3, [np.nan] * 3], np.float32)
    table = syn.CandidateTable("test", words, ids, sims, {"k": 3, "min_cos": 0.5})
    tight = table.restricted(k=2, min_cos=0.65)
    check_invariants(tight)
    assert tight.k == 2 and tight.params == {"k": 2, "min_cos": 0.65}
    assert tight.candidates("alpha") == ["beta", "gamma"]
    assert tight.candidates("beta") == ["alpha"]  # 0.5 < 0.65
    assert tight.candidates("delta") == ["gamma", "alpha"]  # no scores: min_cos does not apply
    for w in words:
        assert set(tight.candidates(w)) <= set(table.candidates(w))
    loose = table.restricted(k=10, min_cos=0.0)
    assert loose.k == 3 and loose.params["min_cos"] == 0.5
    assert all(loose.candidates(w) == table.candidates(w) for w in words)
    text = syn.describe(table, samples=("alpha", "delta", "gamma", "the", "omega"))
    assert "alpha: beta 0.90, gamma 0.70, delta 0.60" in text and "delta: gamma, alpha, beta" in text
    assert "gamma: (no candidates)" in text and "the: (stop word" in text and "omega: (not in the vocabulary)" in text
    assert "coverage: 75.0%" in text


@pytest.mark.parametrize(
    "text, line",
    [
        ("good 0.1 0.2\nbad 0.3\n", 2),  # a missing number
        ("good 0.1 0.2\n\nnice 0.3 0.1\nbad x 0.3\n", 4),  # not a number
        ("good,bad,nice\n", 1),  # a CSV neighbour list
        ('{"good": ["nice"],\n "bad": ["awful",\n', 3),  # truncated JSON
        ('{"good": ["nice"],\n "bad": "awful"\n}\n', 2),  # neighbours not a list
    ],
)
def test_wrong_format_names_file_and_line(private_cache, text, line):
    path = private_cache / "neighbours.txt"
    path.write_text(text)
    with pytest.raises(JaxRobustError, match=rf"{re.escape(str(path))}: line {line}:"):
        syn.load_synonyms(f"counterfitted:{path}")


def test_bad_specs(tmp_path):
    with pytest.raises(JaxRobustError, match="no such file"):
        syn.load_synonyms(f"counterfitted:{tmp_path / 'missing.txt'}")
    with pytest.raises(JaxRobustError, match=r"known sources: glove-cf, wordnet-cf, counterfitted:PATH, wordnet, embedding:MODEL"):
        syn.load_synonyms("thesaurus")
    with pytest.raises(JaxRobustError, match="k must be"):
        syn.load_synonyms("glove-cf", k=0)


def _unit(angle_deg: float) -> list[float]:
    a = np.deg2rad(angle_deg)
    return [float(np.cos(a)), float(np.sin(a)), 0.0]


def test_vectors_text_cosine_order_and_filters(private_cache, monkeypatch):
    # Angles from "happy" set the cosines: glad 0.995, cheerful 0.94, content 0.77, joyful 0.5.
    rows = {
        "happy": _unit(0), "glad": _unit(6), "cheerful": _unit(20), "content": _unit(40), "joyful": _unit(60),
        "The": _unit(1),  # a stop word (after lower-casing): never a word nor a candidate
        "happy2": _unit(2), "don't": _unit(3),  # not alphabetic
        "unhappy": _unit(4),  # WordNet antonym of happy: dropped although closer than glad
        "walk": _unit(150), "walked": _unit(151), "walking": _unit(152), "stroll": _unit(180), "strolling": _unit(153),
    }
    path = private_cache / "vectors.txt"
    path.write_text("".join(f"{w} {' '.join(f'{x:.6f}' for x in v)}\n" for w, v in rows.items()))
    monkeypatch.setattr(syn.tempfile, "gettempdir", lambda: "/no-such-temp")  # as a user's own file: cached
    table = syn.load_synonyms(f"counterfitted:{path}", k=10, min_cos=0.6)
    check_invariants(table)
    assert table.params["format"] == "vectors"
    assert "the" not in table.index and "happy2" not in table.index
    expected = ["glad", "cheerful", "content"]  # the antonym "unhappy" is filtered
    assert table.candidates("happy") == expected
    angle = {"unhappy": 4, "glad": 6, "cheerful": 20, "content": 40}
    i = table.index["happy"]
    cosines = np.cos(np.deg2rad([angle[w] for w in expected]))
    np.testing.assert_allclose(table.sims[i, : len(expected)], cosines, atol=1e-5)
    # same inflection: walking -> strolling, not walk / walked (closer, but other forms)
    assert table.candidates("walking") == ["strolling"]
    assert table.restricted(k=1).candidates("happy") == expected[:1]
    assert table.restricted(min_cos=0.9).candidates("happy") == [w for w in expected if w != "content"]
    loose = syn.load_synonyms(f"counterfitted:{path}", k=10, min_cos=0.45)
    assert loose.candidates("happy")[-1] == "joyful"
    # a header line "count dim" is accepted
    header = private_cache / "with_header.txt"
    header.write_text(f"{len(rows)} 3\n" + path.read_text())
    assert syn.load_synonyms(f"counterfitted:{header}", k=10, min_cos=0.6).candidates("happy") == expected
    # one cache file per (file, k, min_cos); asking again reads it
    cached = private_cache / "cache" / "synonyms"
    assert len(list(cached.glob("table-counterfitted-*.npz"))) == 3
    again = syn.load_synonyms(f"counterfitted:{path}", k=10, min_cos=0.6)
    assert np.array_equal(again.ids, table.ids) and again.params == table.params
    assert len(list(cached.glob("table-counterfitted-*.npz"))) == 3
    # a new TABLE_VERSION misses the old caches and builds afresh
    monkeypatch.setattr(syn, "TABLE_VERSION", syn.TABLE_VERSION + 1)
    assert syn.load_synonyms(f"counterfitted:{path}", k=10, min_cos=0.6).params["version"] == syn.TABLE_VERSION
    assert len(list(cached.glob("table-counterfitted-*.npz"))) == 4


def test_tables_of_temporary_files_are_not_cached(private_cache):
    """A file in the temporary folder will be gone: its table is built, used, and not kept."""
    path = private_cache / "neighbours.json"  # pytest's tmp_path is under the temporary folder
    path.write_text(json.dumps({"good": ["fine", "decent"]}))
    assert syn.load_synonyms(f"counterfitted:{path}", k=8).candidates("good") == ["fine", "decent"]
    assert not list((private_cache / "cache").rglob("table-*.npz"))


# ----------------------------------------------------------------------------------------------
# Counter-fitting


def _pair_cos(v: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    v = counterfit.unit_rows(v)
    return np.sum(v[pairs[:, 0]] * v[pairs[:, 1]], axis=1)


def test_counter_fit_small_problem():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(40, 16)).astype(np.float32)
    v[1] = v[0] + 0.2 * rng.normal(size=16)  # 0/1: near each other, antonyms
    v[3] = v[2] + 0.3 * rng.normal(size=16)  # 2/3: near, antonyms
    v[5] = v[4] + 0.2 * rng.normal(size=16)  # 4/5: near, unconstrained (preserved)
    ant = np.array([[0, 1], [2, 3]], np.int32)
    syns = np.array([[6, 7], [8, 9], [10, 11]], np.int32)  # random directions: far apart
    cfg = counterfit.CounterFitConfig(epochs=30, learning_rate=0.05)
    fitted = counterfit.counter_fit(v, ant, syns, cfg)
    before_ant, after_ant = _pair_cos(v, ant), _pair_cos(fitted, ant)
    before_syn, after_syn = _pair_cos(v, syns), _pair_cos(fitted, syns)
    assert (before_ant > 0.8).all() and (after_ant < 0.1).all(), (before_ant, after_ant)
    assert (before_syn < 0.6).all() and (after_syn > 0.9).all(), (before_syn, after_syn)
    near = np.array([[4, 5]])
    assert _pair_cos(fitted, near)[0] > _pair_cos(v, near)[0] - 0.05, "an untouched close pair drifted apart"
    np.testing.assert_allclose(np.linalg.norm(fitted, axis=1), 1.0, atol=1e-5)


@pytest.mark.assets
def test_glove_cf_real():
    words, fitted = counterfit.glove_cf()
    assert len(words) == counterfit.GLOVE_VOCAB and fitted.shape == (len(words), 50)
    _, raw = counterfit.load_glove(keep=syn.is_vocab_word)
    raw = counterfit.unit_rows(raw)
    index = {w: i for i, w in enumerate(words)}

    def cos_rank(v, a, b):
        sims = v @ v[index[a]]
        return float(sims[index[b]]), int((sims > sims[index[b]]).sum())

    for a, b in [("good", "bad"), ("cheap", "expensive"), ("hot", "cold"), ("strong", "weak")]:
        (c0, r0), (c1, r1) = cos_rank(raw, a, b), cos_rank(fitted, a, b)
        assert c1 < c0 - 0.15 and r1 > 1000, f"{a}/{b}: cos {c0:.2f}->{c1:.2f}, rank {r0}->{r1}"
    for a, b in [("cheap", "inexpensive"), ("big", "large"), ("funny", "humorous")]:
        (c0, _), (c1, r1) = cos_rank(raw, a, b), cos_rank(fitted, a, b)
        assert c1 > c0 + 0.05 and r1 < 10, f"{a}/{b}: cos {c0:.2f}->{c1:.2f}, rank {r1}"

    table = syn.load_synonyms("glove-cf", k=50, min_cos=0.5)
    check_invariants(table)
    assert table.words == words and table.coverage() > 0.95
    assert "bad" not in table.candidates("good") and "expensive" not in table.candidates("cheap")
    assert {"film", "pic"} <= set(table.candidates("movie"))
    a2t = syn.load_synonyms("glove-cf", k=20, min_cos=0.8)
    check_invariants(a2t)
    assert a2t.k == 20 and a2t.coverage() < table.coverage()
    # the A2T table is the TextFooler one, restricted (both come from one neighbour pool)
    narrowed = table.restricted(k=20, min_cos=0.8)
    assert np.array_equal(narrowed.ids, a2t.ids)
    text = syn.describe(a2t)
    assert "glove-cf" in text and "50,000 words" in text and "K = 20" in text
    assert "related words, NOT synonyms" in text.splitlines()[0]  # said where a user looks
    assert re.search(r"movie: .*film 0\.9\d", text)


# ----------------------------------------------------------------------------------------------
# WordNet


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The multilingual functions")
def test_the_english_reader_answers_as_nltks_own():
    """The reader that skips nltk's map to other WordNet versions gives nltk's synsets, lemmas and
    base forms."""
    from nltk.corpus import wordnet as nltk_wordnet

    wn = wn_lib.ensure_wordnet()
    assert wn.map30 is None  # the multilingual map was not built
    nltk_wordnet.ensure_loaded()
    for word in ("films", "took", "good", "happier", "ran", "geese", "movie"):
        assert [s.name() for s in wn.synsets(word)] == [s.name() for s in nltk_wordnet.synsets(word)], word
        assert [wn.morphy(word, p) for p in "nvar"] == [nltk_wordnet.morphy(word, p) for p in "nvar"], word
    assert wn.synset("good.a.01").lemma_names() == nltk_wordnet.synset("good.a.01").lemma_names()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The multilingual functions")  # no Open Multilingual Wordnet
def test_wordnet_reader_and_offline_nltk_data(tmp_path, monkeypatch):
    wn = wn_lib.ensure_wordnet()
    assert wn.get_version() == "3.0"
    assert "film" in {lemma.name() for s in wn.synsets("movie") for lemma in s.lemmas()}
    assert (wn_lib.lexnames_text().splitlines()[0], wn_lib.lexnames_text().splitlines()[-1]) == (
        "00\tadj.all\t3", "44\tadj.ppl\t3")
    assert len(wn_lib.lexnames_text().splitlines()) == 45
    if not wn_lib.debian_wordnet_present():
        pytest.skip("Debian's wordnet-base is not installed; nltk's own data is used")
    root = wn_lib.prepare_nltk_data(tmp_path / "nltk_data")
    wordnet_dir = root / "corpora" / "wordnet"
    assert (wordnet_dir / "lexnames").read_text() == wn_lib.lexnames_text()
    assert not (wordnet_dir / "data.noun").is_symlink()
    assert (root / "corpora" / "stopwords" / "english").read_text().split("\n")[:3] == ["i", "me", "my"]
    # nltk's readers over that directory, as a tool pointed at NLTK_DATA would build them
    from nltk.corpus.reader import WordListCorpusReader, WordNetCorpusReader

    monkeypatch.setenv("NLTK_DATA", str(root))  # nltk reads only under its data roots
    reader = WordNetCorpusReader(str(wordnet_dir), None)
    assert reader.synset("good.a.01").lemmas()[0].antonyms()[0].name() == "bad"
    stop = WordListCorpusReader(str(root / "corpora" / "stopwords"), ["english"]).words("english")
    assert len(stop) == 179 and set(stop) == syn.STOP_WORDS
    assert wn_lib.prepare_nltk_data(root) == root  # idempotent


def test_wordnet_table():
    table = syn.load_synonyms("wordnet", k=50)
    check_invariants(table)
    assert np.isnan(table.sims).all() and table.params["format"] == "wordnet"
    assert len(table.words) > 70_000 and 0.4 < table.coverage() < 0.8
    assert table.candidates("movie")[:2] == ["film", "picture"]  # WordNet's order
    assert "rapidly" in table.candidates("quickly")
    assert "bad" not in table.candidates("good") and "good" in wn_lib.lemma_graph().synonyms("commodity")
    assert "tedious" in table.candidates("boring")
    assert table.candidates("movies") == []  # lemmas only


def test_wordnet_pairs():
    words = ["good", "bad", "awful", "superb", "cheap", "inexpensive", "expensive", "movie", "film"]
    ant = {tuple(sorted((words[a], words[b]))) for a, b in wn_lib.antonym_pairs(words)}
    pairs = {tuple(sorted((words[a], words[b]))) for a, b in wn_lib.synonym_pairs(words)}
    assert {("bad", "good"), ("cheap", "expensive"), ("expensive", "inexpensive")} <= ant
    assert ("awful", "good") in ant, "indirect antonym (adjective cluster of bad) missing"
    assert {("film", "movie"), ("cheap", "inexpensive")} <= pairs
    assert not ant & pairs


def test_wordnet_cf_lists_inflect_like_the_word():
    words = ["film", "films", "movie", "movies", "boring", "tiresome", "tedious", "good", "bad", "took", "take", "bring"]
    lists = dict(zip(words, syn.wordnet_cf_lists(words)))
    assert lists["film"] == ["movie"] and lists["movie"] == ["film"]  # a lemma takes lemmas
    assert lists["films"] == ["movies"] and lists["movies"] == ["films"]  # a plural takes plurals
    assert lists["boring"] == ["tedious", "tiresome"]
    assert "bad" not in lists["good"] and "take" not in lists["took"]  # no antonym, no form of the word itself
    assert "bring" not in lists["took"]  # an inflected form takes no lemma


@pytest.mark.assets
def test_wordnet_cf_table():
    table = syn.load_synonyms("wordnet-cf", k=8, min_cos=0.5)
    check_invariants(table)
    words, _ = counterfit.glove_cf()
    assert table.words == words and table.params["format"] == "vectors"
    sims = table.sims[table.mask]
    assert (sims >= 0.5).all() and (np.diff(np.where(table.mask, table.sims, -1.0), axis=1) <= 1e-6).all()  # best first
    assert {"film", "flick"} <= set(table.candidates("movie")) and "movies" in table.candidates("films")
    assert "bad" not in table.candidates("good") and {"humorous", "comical"} <= set(table.candidates("funny"))
    assert set(syn.load_synonyms("wordnet-cf", k=20, min_cos=0.8).candidates("funny")) <= set(table.candidates("funny")) | set(
        syn.load_synonyms("wordnet-cf", k=50, min_cos=0.8).candidates("funny"))


# ----------------------------------------------------------------------------------------------
# embedding:MODEL


def test_whole_word_tokens():
    wordpiece = {"[CLS]": 0, "[PAD]": 1, "good": 5, "##s": 6, "film": 7, "the": 8, "[unused1]": 9, "42": 10}
    assert syn.whole_word_tokens(wordpiece, {"[CLS]", "[PAD]"}) == {"good": 5, "film": 7}
    bpe = {"<s>": 0, "Ġgood": 5, "good": 6, "ĠGood": 7, "Ġbad": 8, "Ġthe": 9, "Ġ123": 10, "ing": 11}
    assert syn.whole_word_tokens(bpe, {"<s>"}) == {"good": 5, "bad": 8}


def test_embedding_tiny_model(private_cache, tiny_model_dir):
    directory, _ = tiny_model_dir("bert")
    table = syn.load_synonyms(f"embedding:{directory}", k=10, min_cos=-1.0)
    check_invariants(table)
    # conftest's vocabulary: the whole words that are not stop words; no ##s, [CLS], the, was
    assert set(table.words) == {"film", "good", "bad", "plot", "great", "boring"}
    assert table.coverage() == 1.0
    assert "bad" not in table.candidates("good")  # WordNet antonyms are filtered
    # the cosines are those of the model's embedding rows
    from safetensors.numpy import load_file

    weights = load_file(str(directory / "model.safetensors"))
    emb = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    vocab = (directory / "vocab.txt").read_text().split()
    e = counterfit.unit_rows(emb[[vocab.index(w) for w in ("film", "plot")]])
    i, j = table.index["film"], table.index["plot"]
    col = list(table.ids[i]).index(j)
    assert table.sims[i, col] == pytest.approx(float(e[0] @ e[1]), abs=1e-5)


@pytest.mark.assets
def test_embedding_minilm():
    table = syn.load_synonyms("embedding:bundle:minilm-l6", k=20, min_cos=0.3)
    check_invariants(table)
    assert 15_000 < len(table.words) < 30_522
    assert not any(w.startswith("#") for w in table.words)
    assert table.coverage() > 0.5
    assert "films" not in table.candidates("film") and "movie" in table.candidates("film")
