"""Attack reports on hand-made records: metrics counted by hand, files that parse, highlights in place."""

from __future__ import annotations

import csv
import json
import re

import pytest

from jaxrobust.attacks.report import CSV_COLUMNS, summarize, write_report

FILES = {"results.json", "examples.jsonl", "examples.html", "textattack.csv"}


def record(index, label, original, perturbed, subs, p0, p1, success, reason="", queries=1, gradients=0, n_words=None):
    return dict(
        index=index,
        label=label,
        original_text=original,
        perturbed_text=perturbed,
        substitutions=[list(s) for s in subs],
        original_probs=p0,
        perturbed_probs=p1,
        success=success,
        skipped=bool(reason),
        reason=reason,
        queries=queries,
        gradients=gradients,
        n_words=n_words if n_words is not None else len(original.split()),
        words_changed=len(subs),
    )


SUCCESS = record(
    0, 1, "the film was good", "the film was fine", [(3, "good", "fine")],
    [0.1, 0.9], [0.7, 0.3], True, queries=10, gradients=2,
)
# "&" and "<" are words of their own: plot & cast < great -> 5 words, the 1st and 5th substituted
FAILED = record(
    1, 0, "plot & cast < great", "story & cast < don't", [(0, "plot", "story"), (4, "great", "don't")],
    [0.8, 0.2], [0.6, 0.4], False, queries=20, gradients=4, n_words=5,
)
NO_WORD = record(2, 1, "ok", "ok", [], [0.2, 0.8], [0.2, 0.8], False, reason="no attackable word")
MISCLASSIFIED = record(3, 0, "bad film", "bad film", [], [0.3, 0.7], [0.3, 0.7], False, reason="misclassified")
# a lengthened first word shifts the second one; "good" also occurs unchanged before it
SUCCESS2 = record(
    4, 0, "Not good, not good", "Hardly good, not fine", [(0, "Not", "Hardly"), (4, "good", "fine")],
    [0.9, 0.1], [0.4, 0.6], True, queries=13, gradients=6, n_words=5,
)
RECORDS = [SUCCESS, FAILED, NO_WORD, MISCLASSIFIED, SUCCESS2]


def test_metrics_by_hand():
    s = summarize(RECORDS, 2.0, attack="gradient", budget=0.25)
    assert s["n"] == 5
    assert s["clean_accuracy"] == pytest.approx(4 / 5)
    assert s["accuracy_under_attack"] == pytest.approx(2 / 5)  # FAILED and NO_WORD stay correct
    assert s["attack_success_rate"] == pytest.approx(2 / 4)  # NO_WORD counts as a failed attack
    assert s["perturbed_word_pct"] == pytest.approx((100 * 1 / 4 + 100 * 2 / 5) / 2)
    assert s["mean_queries"] == pytest.approx((10 + 20 + 1 + 13) / 4)
    assert s["mean_gradients"] == pytest.approx((2 + 4 + 0 + 6) / 4)
    assert s["seconds"] == 2.0 and s["examples_per_second"] == pytest.approx(2.5)
    assert (s["skipped_misclassified"], s["skipped_no_candidates"], s["successes"]) == (1, 1, 2)
    assert (s["attack"], s["budget"]) == ("gradient", 0.25)


def test_extra_may_not_overwrite_metrics():
    with pytest.raises(ValueError, match="n"):
        summarize(RECORDS, 1.0, n=3)


def test_files_parse(tmp_path):
    summary = summarize(RECORDS, 2.0, task="sst2")
    write_report(tmp_path, RECORDS, summary, label_names=["negative", "positive"])
    assert {p.name for p in tmp_path.iterdir()} == FILES

    assert json.loads((tmp_path / "results.json").read_text()) == summary
    lines = (tmp_path / "examples.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == RECORDS

    with open(tmp_path / "textattack.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == CSV_COLUMNS
    assert [r["result_type"] for r in rows] == ["Successful", "Failed", "Failed", "Skipped", "Successful"]
    assert (rows[0]["original_text"], rows[0]["perturbed_text"]) == ("the film was [[good]]", "the film was [[fine]]")
    assert rows[1]["original_text"] == "[[plot]] & cast < [[great]]"
    assert rows[1]["perturbed_text"] == "[[story]] & cast < [[don't]]"
    assert rows[4]["original_text"] == "[[Not]] good, not [[good]]"
    assert rows[4]["perturbed_text"] == "[[Hardly]] good, not [[fine]]"
    assert rows[2]["original_text"] == rows[2]["perturbed_text"] == "ok"
    assert float(rows[0]["original_score"]) == pytest.approx(0.1)
    assert float(rows[0]["perturbed_score"]) == pytest.approx(0.7)
    assert [(r["original_output"], r["perturbed_output"], r["ground_truth_output"]) for r in rows[:2]] == [
        ("1", "0", "1"),
        ("0", "0", "0"),
    ]
    assert [int(float(r["num_queries"])) for r in rows] == [10, 20, 1, 1, 13]


def test_html_escapes_and_highlights_exactly_the_substitutions(tmp_path):
    write_report(tmp_path, RECORDS, summarize(RECORDS, 1.0), label_names=["negative", "positive"])
    page = (tmp_path / "examples.html").read_text()
    assert "<del>plot</del> &amp; cast &lt; <del>great</del>" in page
    assert "<ins>story</ins> &amp; cast &lt; <ins>don&#x27;t</ins>" in page
    assert "<del>Not</del> good, not <del>good</del>" in page
    assert "<ins>Hardly</ins> good, not <ins>fine</ins>" in page
    assert re.findall(r"<del>(.*?)</del>", page) == ["good", "plot", "great", "Not", "good"]
    assert re.findall(r"<ins>(.*?)</ins>", page) == ["fine", "story", "don&#x27;t", "Hardly", "fine"]
    assert "cast < great" not in page and "<script" not in page and "http" not in page
    assert "positive" in page and "negative" in page
    assert "1 skipped" in page and "bad film" not in page


def test_inconsistent_substitutions_are_refused(tmp_path):
    bad = dict(SUCCESS, substitutions=[[2, "good", "fine"]])  # word 2 is "was"
    with pytest.raises(ValueError, match="word 2"):
        write_report(tmp_path, [bad], summarize([bad], 1.0))


def test_no_temp_files_left_on_rewrite(tmp_path):
    for _ in range(2):
        write_report(tmp_path, RECORDS, summarize(RECORDS, 1.0))
    assert {p.name for p in tmp_path.iterdir()} == FILES


def test_no_successes(tmp_path):
    records = [FAILED, NO_WORD]
    s = summarize(records, 4.0)
    assert s["attack_success_rate"] == 0.0 and s["successes"] == 0
    assert s["perturbed_word_pct"] is None
    assert s["accuracy_under_attack"] == s["clean_accuracy"] == 1.0
    write_report(tmp_path, records, s)
    assert json.loads((tmp_path / "results.json").read_text())["perturbed_word_pct"] is None


def test_only_misclassified(tmp_path):
    s = summarize([MISCLASSIFIED], 1.0)
    assert s["clean_accuracy"] == 0.0 and s["accuracy_under_attack"] == 0.0
    assert s["attack_success_rate"] is None and s["mean_queries"] is None and s["mean_gradients"] is None


def test_zero_records(tmp_path):
    s = summarize([], 0.0, attack="textfooler")
    assert s["n"] == 0 and s["successes"] == 0 and s["attack"] == "textfooler"
    for key in ("clean_accuracy", "accuracy_under_attack", "attack_success_rate", "perturbed_word_pct",
                "mean_queries", "mean_gradients", "examples_per_second"):
        assert s[key] is None, key
    write_report(tmp_path / "new" / "dir", [], s)
    out = tmp_path / "new" / "dir"
    assert {p.name for p in out.iterdir()} == FILES
    assert (out / "examples.jsonl").read_text() == ""
    with open(out / "textattack.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert list(reader) == [] and reader.fieldnames == CSV_COLUMNS
    assert "<ins>" not in (out / "examples.html").read_text()


def test_low_confidence_examples_are_counted_and_flagged(tmp_path):
    # correct but unsure (p(true) 0.55): a success there says little about robustness
    unsure = record(5, 1, "the film was good", "the film was fine", [(3, "good", "fine")], [0.45, 0.55], [0.6, 0.4], True)
    just_sure = record(6, 0, "bad film", "bad film", [], [0.6, 0.4], [0.6, 0.4], False)  # p(true) 0.6: confident
    records = RECORDS + [unsure, just_sure]
    s = summarize(records, 1.0)
    # attacked: SUCCESS (0.9), FAILED (0.8), NO_WORD (0.8), SUCCESS2 (0.9), unsure (0.55), just_sure (0.6);
    # MISCLASSIFIED (p(true) 0.3) is skipped, not low confidence
    assert s["low_confidence_n"] == 1
    assert s["attack_success_rate"] == pytest.approx(3 / 6)
    assert s["success_rate_confident"] == pytest.approx(2 / 5)
    assert summarize([unsure], 1.0)["success_rate_confident"] is None  # no confident example
    assert summarize([MISCLASSIFIED], 1.0)["low_confidence_n"] == 0
    write_report(tmp_path, records, s)
    page = (tmp_path / "examples.html").read_text()
    assert page.count("low confidence: clean p(label)") == 1
    assert "<th>low_confidence_n</th><td>1</td>" in page


def test_rewriting_a_report_never_leaves_old_results_beside_new_examples(tmp_path, monkeypatch):
    """A report with results.json is complete: writing over one removes that file before anything
    else, so a crash half-way leaves an incomplete report, not old results with new examples."""
    import jaxrobust.attacks.report as report

    write_report(tmp_path, RECORDS, summarize(RECORDS, 1.0))
    written, real = [], report.write_text_atomic

    def crash_on_second(path, text):
        written.append(path.name)
        if len(written) == 2:
            raise OSError("disk full")
        return real(path, text)

    monkeypatch.setattr(report, "write_text_atomic", crash_on_second)
    with pytest.raises(OSError):
        write_report(tmp_path, RECORDS[:2], summarize(RECORDS[:2], 1.0))
    assert not (tmp_path / "results.json").exists()
    assert written[-1] != "results.json"
