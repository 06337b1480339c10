"""The built-in bundle tasks load the real data, split it reproducibly, and report themselves.

Tests marked ``assets`` fetch the registry bundles through the real code into ``JAXROBUST_CACHE``
(a few tens of MB on first use); the rest need no download.
"""

from __future__ import annotations

import collections
import hashlib

import pytest

from jaxrobust.data import sources
from jaxrobust.data.describe import describe_task
from jaxrobust.data.tasks import SPLITS, TASKS, Example, Splits, Task, get_task, make_examples
from jaxrobust.errors import JaxRobustError

# Examples per label over all three splits, as measured from the pinned bundles.
EXPECTED = {
    "rotten_tomatoes": {"rotten": 5405, "fresh": 7403},  # 12,808 labelled snippets
    "polarity": {"neg": 750, "pos": 750},
    "vader_tweets": {"negative": 1299, "positive": 2897},  # 4,200 less 4 rated exactly 0
    "vader_amazon": {"negative": 1482, "positive": 2128},  # 3,708 less 98 rated exactly 0
    "bbc_news": {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401},
    "hoc_party": {"Conservative": 442, "Labour": 398},  # of 1,000 speeches, 160 by other parties
}

# sha256 of the test split ("label<TAB>text" lines), first 16 hex digits. The split must never
# change between runs or machines: reported results are only comparable on the same test set. If
# this fails after a deliberate change to a loader or to the split, say so where results are kept.
TEST_SPLIT_DIGEST = {
    "rotten_tomatoes": "f6041063abccd876",
    "polarity": "b6407477b31cf05b",
    "vader_tweets": "a80d59aacfa01527",
    "vader_amazon": "92f35d95de6a9b68",
    "bbc_news": "6b93dfeabedd5b34",
    "hoc_party": "3c4f950af2314a1d",
}

BUNDLE_TASKS = sorted(EXPECTED)


@pytest.fixture(scope="module")
def loaded():
    """``load(name) -> (splits, examples given to the split)``, loaded once per module.

    The split function is wrapped to see its input, so coverage and disjointness are checked
    against the exact examples the loader produced rather than against counts alone.
    """
    cache = {}

    def load(name: str) -> tuple[Splits, list[Example]]:
        if name not in cache:
            seen = []
            real = sources.split_80_10_10

            def spy(examples, skipped):
                seen.append(list(examples))
                return real(examples, skipped)

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(sources, "split_80_10_10", spy)
                splits = get_task(name).load()
            assert len(seen) == 1, f"{name} should split once"
            cache[name] = (splits, seen[0])
        return cache[name]

    return load


def test_every_bundle_task_is_tested():
    get_task("rotten_tomatoes")  # registers the built-in tasks
    registered = {name for name, task in TASKS.items() if task.source.startswith("bundle:")}
    assert registered == set(EXPECTED)


@pytest.mark.assets
@pytest.mark.parametrize("name", BUNDLE_TASKS)
def test_sizes_and_labels(name, loaded):
    task = get_task(name)
    splits, _ = loaded(name)
    assert set(EXPECTED[name]) == set(task.label_names)
    counts = collections.Counter(task.label_names[e.label] for s in SPLITS for e in splits[s])
    assert counts == EXPECTED[name]
    for s in SPLITS:
        assert all(0 <= e.label < task.num_labels for e in splits[s])
        assert {e.label for e in splits[s]} == set(range(task.num_labels)), f"{s} lacks a class"
        assert all(e.text.strip() for e in splits[s])


@pytest.mark.assets
@pytest.mark.parametrize("name", BUNDLE_TASKS)
def test_split_is_a_partition(name, loaded):
    splits, examples = loaded(name)
    # By identity: the data has duplicate texts (BBC, Amazon), which must not hide an overlap.
    ids = [id(e) for s in SPLITS for e in splits[s]]
    assert len(ids) == len(set(ids)), "an example is in two splits"
    assert set(ids) == {id(e) for e in examples}, "the splits do not cover the examples"


@pytest.mark.assets
@pytest.mark.parametrize("name", BUNDLE_TASKS)
def test_split_is_deterministic(name, loaded):
    first, _ = loaded(name)
    again = get_task(name).load()
    for s in SPLITS:
        assert first[s] == again[s], f"{s} differs between loads"
    digest = hashlib.sha256()
    for e in first.test:
        digest.update(f"{e.label}\t{e.text}\n".encode())
    assert digest.hexdigest()[:16] == TEST_SPLIT_DIGEST[name]


@pytest.mark.assets
@pytest.mark.parametrize("name", BUNDLE_TASKS)
def test_split_is_stratified_80_10_10(name, loaded):
    task = get_task(name)
    splits, examples = loaded(name)
    for s, fraction in zip(SPLITS, (0.8, 0.1, 0.1)):
        assert abs(len(splits[s]) / len(examples) - fraction) < 0.01
    train = collections.Counter(e.label for e in splits.train)
    for s in ("dev", "test"):
        part = collections.Counter(e.label for e in splits[s])
        for label in range(task.num_labels):
            gap = 100 * abs(part[label] / len(splits[s]) - train[label] / len(splits.train))
            assert gap <= 2.0, f"{task.label_names[label]} in {s}: {gap:.1f} points off train"


@pytest.mark.assets
@pytest.mark.parametrize("name", BUNDLE_TASKS)
def test_describe_reports_split_sizes(name, loaded):
    splits, _ = loaded(name)
    report = describe_task(get_task(name), splits)
    total = next(line for line in report.splitlines() if line.startswith("total"))
    assert total.split()[1:] == [str(len(splits[s])) for s in SPLITS]
    assert get_task(name).source in report


# --- no downloads -----------------------------------------------------------------------------


def test_describe_small_task():
    train = [Example("a b c", 0), Example("d e", 1), Example("f", 1), Example("g h i j", 1)]
    splits = Splits(train, [Example("x", 0)], [Example("y", 1)], skipped=2)
    task = Task("tiny", ("no", "yes"), lambda: splits, source="unit test")
    report = describe_task(task)
    assert "no" in report and "yes" in report and "unit test" in report
    assert any(line.split() == ["total", "4", "1", "1"] for line in report.splitlines())
    assert "1 (25.0%)" in report and "3 (75.0%)" in report
    assert "skipped (empty or whitespace-only text): 2" in report
    assert "max 4" in report


def test_make_examples_rejects_undeclared_label():
    with pytest.raises(JaxRobustError, match="'maybe'"):
        make_examples([("good", "pos"), ("hmm", "maybe")], ("neg", "pos"), "unit")
    with pytest.raises(JaxRobustError, match="outside the declared labels"):
        make_examples([("good", 2)], ("neg", "pos"), "unit")


def test_make_examples_skips_and_counts_empty_texts():
    rows = [("", "neg"), ("  \n\t", "pos"), (None, "neg"), ("fine", "pos"), ("bad", 0)]
    examples, skipped = make_examples(rows, ("neg", "pos"), "unit")
    assert skipped == 3
    assert examples == [Example("fine", 1), Example("bad", 0)]


@pytest.mark.parametrize("missing", ["text", "label"])
def test_csv_task_names_the_missing_column(tmp_path, missing):
    path = tmp_path / "data.csv"
    columns = {"text": "sentence", "label": "label"} if missing == "text" else {"text": "text", "label": "gold"}
    path.write_text(f"{columns['text']},{columns['label']}\nfine film,pos\ndull film,neg\n", encoding="utf-8")
    with pytest.raises(JaxRobustError, match=f"no column '{missing}'"):
        get_task(f"csv:{path}").load()
