"""The ``attack`` and ``sweep`` commands as a user runs them: report files and one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "jaxrobust", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def neighbours(tmp_path_factory):
    """A Jia-format neighbour table over the tiny vocabulary (sentiment-flipping, no WordNet antonyms)."""
    path = tmp_path_factory.mktemp("syn") / "neighbours.json"
    path.write_text(json.dumps({"good": ["boring"], "great": ["boring"], "bad": ["great"], "boring": ["great"], "plot": ["film"]}))
    return f"counterfitted:{path}"


def test_attack_writes_every_report(trained_tiny_run, neighbours, tmp_path):
    out = tmp_path / "report"
    proc = _cli("attack", "--workdir", trained_tiny_run, "--attack", "gradient", "--synonyms", neighbours,
                "--n", 1000, "--budget", 0.5, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "notice: --n 1000 is larger than the test split" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    for key in ("clean_accuracy", "accuracy_under_attack", "attack_success_rate", "perturbed_word_pct",
                "mean_queries", "seconds", "examples_per_second", "n"):
        assert key in results
    assert results["accuracy_under_attack"] < results["clean_accuracy"]
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert len(records) == results["n"]
    for r in records:
        for key in ("index", "label", "original_text", "perturbed_text", "substitutions", "original_probs",
                    "perturbed_probs", "success", "skipped", "queries"):
            assert key in r
    success = next(r for r in records if r["success"])
    html = (out / "examples.html").read_text()
    assert f"<ins>{success['substitutions'][0][2]}</ins>" in html
    rows = list(csv.DictReader((out / "textattack.csv").open()))
    assert len(rows) == len(records)
    assert sum(row["result_type"] == "Successful" for row in rows) == sum(r["success"] for r in records)


def test_sweep_writes_table_and_plot(trained_tiny_run, neighbours, tmp_path):
    out = tmp_path / "sweep"
    proc = _cli("sweep", "--workdir", trained_tiny_run, "--workdir", trained_tiny_run, "--budgets", "0.1,0.5",
                "--synonyms", neighbours, "--n", 50, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = json.loads((out / "sweep.json").read_text())
    assert len(table["accuracy_under_attack"]) == 2 and len(table["accuracy_under_attack"][0]) == 2
    assert (out / "robust_accuracy_vs_budget.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--attack", "hotflip"], "unknown attack 'hotflip'"),
        (["--budget", "0"], "budget must be in (0, 1]"),
        (["--budget", "1.5"], "budget must be in (0, 1]"),
        (["--synonyms", "thesaurus"], "unknown synonym source"),
    ],
)
def test_bad_attack_flags_are_one_line(trained_tiny_run, flags, message):
    proc = _cli("attack", "--workdir", trained_tiny_run, "--n", 5, *flags)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_synonym_file_in_the_wrong_format_names_the_line(trained_tiny_run, tmp_path):
    bad = tmp_path / "vectors.txt"
    bad.write_text("good 0.1 0.2 0.3\nbad 0.1 zero 0.3\n")
    proc = _cli("attack", "--workdir", trained_tiny_run, "--n", 5, "--synonyms", f"counterfitted:{bad}")
    assert proc.returncode == 2 and "line 2" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_without_checkpoint_is_one_line(trained_tiny_run, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text((trained_tiny_run / "config.json").read_text())
    proc = _cli("attack", "--workdir", tmp_path / "run", "--n", 5)
    assert proc.returncode == 2 and "no best-on-dev checkpoint" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
