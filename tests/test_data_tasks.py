"""The built-in bundle tasks load the real data, split it reproducibly, and report themselves.

Tests marked ``assets`` fetch the registry bundles through the real code into ``JAXROBUST_CACHE``
(a few tens of MB on first use); the rest need no download.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re

import pytest

from jaxrobust.data import sources
from jaxrobust.data.describe import describe_task
from jaxrobust.data.tasks import SPLITS, TASKS, Example, Splits, Task, get_task, make_examples
from jaxrobust.errors import HubUnreachable, JaxRobustError

# Examples per label over all three splits, as measured from the pinned bundles, after each
# repeated text is kept once (DUPLICATES: how many repeats were dropped before splitting).
EXPECTED = {
    "rotten_tomatoes": {"rotten": 5384, "fresh": 7368},  # 12,808 labelled snippets less 56 repeats
    "polarity": {"neg": 750, "pos": 750},
    "vader_tweets": {"negative": 1299, "positive": 2897},  # 4,200 less 4 rated exactly 0
    "vader_amazon": {"negative": 1480, "positive": 2120},  # 3,708 less 98 rated exactly 0 and 10 repeats
    "vader_nyt": {"negative": 2704, "positive": 2180},  # 5,190 less 244 rated exactly 0 and 62 repeats
    "bbc_news": {"business": 503, "entertainment": 369, "politics": 403, "sports": 503, "tech": 347},
    "hoc_party": {"Conservative": 437, "Labour": 393},  # of 1,000 speeches, 160 by other parties
}
DUPLICATES = {"rotten_tomatoes": 56, "polarity": 0, "vader_tweets": 0, "vader_amazon": 10, "vader_nyt": 62, "bbc_news": 100, "hoc_party": 10}

# sha256 of the test split ("label<TAB>text" lines), first 16 hex digits. The split must never
# change between runs or machines: reported results are only comparable on the same test set. If
# this fails after a deliberate change to a loader or to the split, say so where results are kept
# (runs and study cells are keyed by Splits.digest, so they are not reused across such a change).
TEST_SPLIT_DIGEST = {
    "rotten_tomatoes": "a16a5d97bdab854d",
    "polarity": "b6407477b31cf05b",
    "vader_tweets": "a80d59aacfa01527",
    "vader_amazon": "7ef27c8286d0041c",
    "vader_nyt": "90970f37d21dd247",
    "bbc_news": "6ea30622f46924d3",
    "hoc_party": "7066534b394223f6",
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
    # By identity: an example object is in one split at most.
    ids = [id(e) for s in SPLITS for e in splits[s]]
    assert len(ids) == len(set(ids)), "an example is in two splits"
    assert set(ids) <= {id(e) for e in examples}, "a split holds an example the loader did not give"
    # By text: a repeated text is kept once, so no training text is also a dev or test text.
    texts = [" ".join(e.text.split()) + "\t" + " ".join((e.text_b or "").split()) for s in SPLITS for e in splits[s]]
    assert len(texts) == len(set(texts)), "a text is in the split twice"
    distinct = {" ".join(e.text.split()) + "\t" + " ".join((e.text_b or "").split()) for e in examples}
    assert set(texts) == distinct, "the splits do not cover the distinct texts"
    assert splits.duplicates == len(examples) - len(distinct) == DUPLICATES[name]


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
    splits, _ = loaded(name)
    total = sum(len(splits[s]) for s in SPLITS)
    for s, fraction in zip(SPLITS, (0.8, 0.1, 0.1)):
        assert abs(len(splits[s]) / total - fraction) < 0.01
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


def test_deduplicate_keeps_each_text_once_test_first():
    from jaxrobust.data.tasks import deduplicate

    train = [Example("good  film", 1), Example("bad", 0), Example("fine", 1), Example("bad", 0)]
    test = [Example("good film", 0), Example("new", 1)]  # "good film" is train's first text, spaced otherwise
    parts, dropped = deduplicate({"train": train, "test": test})
    assert dropped == 2
    assert parts["test"] == test  # test keeps its own, so a fixed test set never changes
    assert parts["train"] == [Example("bad", 0), Example("fine", 1)]
    pairs = [Example("a", 0, "b"), Example("a", 0, "c"), Example("a", 1, "b")]
    assert deduplicate({"train": pairs}) == ({"train": pairs[:2]}, 1)  # a pair is one text


def test_csv_repeats_are_dropped_before_splitting_and_described(tmp_path):
    rows = _balanced(10) + ["text pos 3,pos", "text  neg 4,neg", "text pos 3,neg"]  # a repeat with another label too
    task = get_task(f"csv:{_csv(tmp_path, rows)}")
    splits = task.load()
    assert splits.duplicates == 3
    texts = [e.text for s in SPLITS for e in splits[s]]
    assert len(texts) == 20 and len(set(texts)) == 20
    report = describe_task(task, splits)
    assert "duplicates dropped before splitting (each text in one split only): 3" in report
    assert f"split digest (the key of runs and study cells): {splits.digest()}" in report


def test_split_digest_names_the_split():
    splits = Splits([Example("a", 0), Example("b", 1)], [Example("c", 0)], [Example("d", 1)])
    same = Splits([Example("a", 0), Example("b", 1)], [Example("c", 0)], [Example("d", 1)])
    assert splits.digest() == same.digest() and re.fullmatch(r"[0-9a-f]{16}", splits.digest())
    for changed in (
        Splits([Example("a", 0), Example("b", 0)], [Example("c", 0)], [Example("d", 1)]),  # a label
        Splits([Example("a", 0)], [Example("c", 0)], [Example("b", 1), Example("d", 1)]),  # a moved example
        Splits([Example("a", 0), Example("b", 1, "x")], [Example("c", 0)], [Example("d", 1)]),  # a second text
    ):
        assert changed.digest() != splits.digest()


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


# --- user files: bad input is one line naming FILE:LINE ---------------------------------------


def _csv(tmp_path, rows, name="data.csv", header="text,label"):
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


def _balanced(n_per_class, labels=("neg", "pos")):
    return [f"text {label} {i},{label}" for i in range(n_per_class) for label in labels]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_non_utf8_file_names_line_column_and_byte(tmp_path, kind):
    path = tmp_path / f"data.{kind}"
    if kind == "csv":
        path.write_bytes(b"text,label\nfine film,pos\ncaf\xe9 film,neg\n")
        where = r"data\.csv:3: not UTF-8 \(byte 0xe9 at column 4\); save the file as UTF-8"
    else:
        path.write_bytes(b'{"text": "fine", "label": "pos"}\n{"text": "caf\xe9", "label": "neg"}\n')
        where = r"data\.jsonl:2: not UTF-8 \(byte 0xe9 at column 14\)"
    with pytest.raises(JaxRobustError, match=where):
        get_task(f"{kind}:{path}")


@pytest.mark.parametrize("row, got", [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number")])
def test_jsonl_row_that_is_not_an_object(tmp_path, row, got):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "fine", "label": "pos"}\n\n' + row + "\n", encoding="utf-8")
    with pytest.raises(JaxRobustError, match=rf"data\.jsonl:3: expected a JSON object per line, got {got}"):
        get_task(f"jsonl:{path}")


def test_csv_row_without_a_label(tmp_path):
    empty = _csv(tmp_path, ["fine film,pos", "dull film,", "good,pos"])
    with pytest.raises(JaxRobustError, match=r"data\.csv:3: empty label in 'label'"):
        get_task(f"csv:{empty}")
    short = _csv(tmp_path, ["fine film,pos", "good,pos", '"a long\nreview"'])  # starts on line 4
    with pytest.raises(JaxRobustError, match=r"data\.csv:4: no 'label' cell \(the row has 1 of 2 cells\)"):
        get_task(f"csv:{short}")


def test_csv_row_with_an_unquoted_comma(tmp_path):
    path = _csv(tmp_path, ["fine film,pos", "dull, very dull,neg"])
    with pytest.raises(JaxRobustError, match=r"data\.csv:3: 3 cells but the header has 2; quote texts"):
        get_task(f"csv:{path}")


@pytest.mark.parametrize("missing", ["text", "label"])
def test_jsonl_row_without_a_field(tmp_path, missing):
    path = tmp_path / "data.jsonl"
    row = {"text": "dull", "label": "neg"}
    del row[missing]
    path.write_text(json.dumps({"text": "fine", "label": "pos"}) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(JaxRobustError, match=rf"data\.jsonl:2: no field '{missing}'"):
        get_task(f"jsonl:{path}")


def test_jsonl_null_label_is_an_error(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "fine", "label": "pos"}\n{"text": "dull", "label": null}\n', encoding="utf-8")
    with pytest.raises(JaxRobustError, match=r"data\.jsonl:2: empty label in 'label'"):
        get_task(f"jsonl:{path}")


def test_file_empty_texts_are_still_skipped_and_counted(tmp_path):
    path = _csv(tmp_path, _balanced(8) + ['"  ",pos', ",neg"])
    splits = get_task(f"csv:{path}").load()
    assert splits.skipped == 2
    assert sum(len(splits[s]) for s in SPLITS) == 16


def test_integer_labels_are_in_numeric_order(tmp_path):
    rows = [f"text {label} {i},{label}" for i in range(8) for label in ("10", "2", "1")]
    path = _csv(tmp_path, rows + ["also two,02"])  # "02" is the class of "2"
    task = get_task(f"csv:{path}")
    assert task.label_names == ("1", "2", "10")
    splits = task.load()
    by_text = {e.text: task.label_names[e.label] for s in SPLITS for e in splits[s]}
    assert by_text["text 10 0"] == "10" and by_text["text 2 3"] == "2" and by_text["also two"] == "2"


def test_declared_label_names(tmp_path):
    path = _csv(tmp_path, [f"good {i},pos" for i in range(8)] + [f"bad {i},0" for i in range(8)])
    task = get_task(f"csv:{path}", label_names=("neg", "pos", "neutral"))  # an index or a name
    assert task.label_names == ("neg", "pos", "neutral")
    labels = {e.text.split()[0]: e.label for s in SPLITS for e in task.load()[s]}
    assert labels == {"good": 1, "bad": 0}
    bad = _csv(tmp_path, ["good,pos", "hmm,maybe"], name="bad.csv")
    message = r"bad\.csv:3: label 'maybe' is not one of the declared labels neg, pos \(or an index 0\.\.1\)"
    with pytest.raises(JaxRobustError, match=message):
        get_task(f"csv:{bad}", label_names=("neg", "pos"))
    with pytest.raises(JaxRobustError, match="label 'pos' is not one of the declared labels neg, positive"):
        get_task(f"csv:{path}", label_names=["neg", "positive"])
    with pytest.raises(JaxRobustError, match="label names must be at least two distinct"):
        get_task(f"csv:{path}", label_names=("pos", "pos"))


def test_single_class_file_is_an_error(tmp_path):
    path = _csv(tmp_path, [f"good {i},pos" for i in range(20)])
    with pytest.raises(JaxRobustError, match=r"data\.csv has a single class 'pos'; a classifier needs at least two"):
        get_task(f"csv:{path}")


@pytest.mark.parametrize("per_class, empty", [(2, "dev and test"), (5, "dev"), (7, "dev")])
def test_too_few_rows_for_the_split(tmp_path, per_class, empty):
    path = _csv(tmp_path, _balanced(per_class))
    n = 2 * per_class
    message = (rf"data\.csv has too few rows per class for the 80/10/10 split: {n} rows \('neg' {per_class}, "
               rf"'pos' {per_class}\) leave the {empty} split empty; give each class at least 8 rows")
    with pytest.raises(JaxRobustError, match=message):
        get_task(f"csv:{path}")


def test_eight_rows_per_class_fill_every_split(tmp_path):
    splits = get_task(f"csv:{_csv(tmp_path, _balanced(8))}").load()
    for s in SPLITS:
        assert {e.label for e in splits[s]} == {0, 1}, f"{s} lacks a class"
    test_only = _csv(tmp_path, _balanced(5), name="main.csv")
    splits = get_task(f"csv:{test_only}", test=str(_csv(tmp_path, ["own,neg", "own too,pos"], name="t.csv"))).load()
    assert {e.label for e in splits.dev} == {0, 1}


# --- user files: own dev and test files, resolved paths ---------------------------------------


def _texts(examples):
    return {e.text for e in examples}


def test_own_dev_and_test_files(tmp_path):
    main = _csv(tmp_path, _balanced(10), name="main.csv")
    dev = _csv(tmp_path, ["dev a,pos", "dev b,neg"], name="dev.csv")
    test = _csv(tmp_path, ["test a,pos", "test b,neutral"], name="test.csv")  # a class only in test
    task = get_task(f"csv:{main}", dev=str(dev), test=str(test))
    assert task.label_names == ("neg", "neutral", "pos")  # the union of all files
    splits = task.load()
    assert len(splits.train) == 20  # all of the main file
    assert _texts(splits.dev) == {"dev a", "dev b"} and _texts(splits.test) == {"test a", "test b"}
    assert str(dev) in task.source and str(test) in task.source


@pytest.mark.parametrize("given, cut", [("test", "dev"), ("dev", "test")])
def test_one_own_file_cuts_the_other_from_main(tmp_path, given, cut):
    main = _csv(tmp_path, _balanced(10), name="main.csv")
    own = _csv(tmp_path, ["own a,pos", "own b,neg"], name="own.csv")
    splits = get_task(f"csv:{main}", **{given: str(own)}).load()
    assert _texts(splits[given]) == {"own a", "own b"}
    assert len(splits.train) == 18 and len(splits[cut]) == 2  # 90/10, stratified
    assert {e.label for e in splits[cut]} == {0, 1}
    assert not _texts(splits.train) & _texts(splits[cut])


def test_own_files_in_jsonl(tmp_path):
    def jsonl(name, rows):
        path = tmp_path / name
        path.write_text("".join(json.dumps({"s": t, "y": y}) + "\n" for t, y in rows), encoding="utf-8")
        return path

    main = jsonl("main.jsonl", [(f"t{i}", i % 2) for i in range(20)])
    test = jsonl("test.jsonl", [("x", 1), ("y", 0)])
    task = get_task(f"jsonl:{main}", text_field="s", label_field="y", test=str(test))
    assert task.label_names == ("0", "1")
    assert _texts(task.load().test) == {"x", "y"}


def test_missing_own_file_is_named(tmp_path):
    main = _csv(tmp_path, _balanced(10), name="main.csv")
    with pytest.raises(JaxRobustError, match=r"no such file: .*nodev\.csv \(the dev file\)"):
        get_task(f"csv:{main}", dev=str(tmp_path / "nodev.csv"))
    with pytest.raises(JaxRobustError, match=r"no such file: .*nomain\.csv$"):
        get_task(f"csv:{tmp_path / 'nomain.csv'}")
    with pytest.raises(JaxRobustError, match=r"bad\.csv:2: empty label"):  # an own file is checked like the main one
        get_task(f"csv:{main}", test=str(_csv(tmp_path, ["x,"], name="bad.csv")))


def test_registered_task_refuses_file_options():
    with pytest.raises(JaxRobustError, match="apply to csv:PATH / jsonl:PATH tasks only, not 'rotten_tomatoes'"):
        get_task("rotten_tomatoes", dev="dev.csv")


def test_file_task_name_is_the_resolved_path(tmp_path, monkeypatch):
    path = _csv(tmp_path, _balanced(8))
    monkeypatch.chdir(tmp_path)
    assert get_task("csv:data.csv").name == f"csv:{path.resolve()}"
    assert get_task("csv:data.csv").source == str(path.resolve())
    monkeypatch.setenv("HOME", str(tmp_path))
    assert get_task("csv:~/data.csv").name == f"csv:{path.resolve()}"


# --- hub datasets: only a connection failure is "unreachable" ---------------------------------


def _hub_failure(monkeypatch, error):
    import datasets

    def load_dataset(*args, **kwargs):
        raise error

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(JaxRobustError) as info:
        get_task("sst2").load()
    return info.value


def _unreachable_errors():
    import requests
    from huggingface_hub.errors import OfflineModeIsEnabled

    return [
        ConnectionError("Couldn't reach 'glue' on the Hub (LocalEntryNotFoundError)"),  # what datasets raises here
        requests.exceptions.ConnectionError("Max retries exceeded"),
        OfflineModeIsEnabled("offline"),
        OSError("We couldn't connect to 'https://huggingface.co' to load the files"),
    ]


@pytest.mark.parametrize("index", range(4))
def test_hub_connection_failure_is_unreachable(monkeypatch, index):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    error = _hub_failure(monkeypatch, _unreachable_errors()[index])
    assert isinstance(error, HubUnreachable)
    message = r"could not load glue/sst2 from the Hugging Face hub \(\w+: .+\); offline tasks: .*rotten_tomatoes"
    assert re.match(message, str(error))


def test_hub_offline_mode_makes_a_missing_file_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert isinstance(_hub_failure(monkeypatch, FileNotFoundError("not cached")), HubUnreachable)


def test_hub_dataset_not_found_is_not_unreachable(monkeypatch):
    from datasets.exceptions import DatasetNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    missing = DatasetNotFoundError("Dataset 'glue' doesn't exist on the Hub or cannot be accessed.")
    for error in (missing, FileNotFoundError("gone")):
        raised = _hub_failure(monkeypatch, error)
        assert not isinstance(raised, HubUnreachable)
        assert re.fullmatch(rf"dataset glue/sst2 not found on the hub \({re.escape(str(error))}\)", str(raised))


def test_hub_other_failure_names_the_dataset_and_the_error(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    raised = _hub_failure(monkeypatch, ValueError("BuilderConfig 'sst3' not found.\nAvailable: ['sst2']"))
    assert not isinstance(raised, HubUnreachable)
    assert str(raised) == "could not load dataset glue/sst2 (ValueError: BuilderConfig 'sst3' not found.)"
