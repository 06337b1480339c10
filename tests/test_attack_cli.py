"""The ``attack`` and ``sweep`` commands as a user runs them: report files, one-line errors and Ctrl-C."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ATTACK_SENTENCES
from jaxrobust import cli
from jaxrobust import interrupt
from jaxrobust.attacks.run import load_target
from jaxrobust.attacks.verify import string_probs
from jaxrobust.data.tasks import Example


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jaxrobust", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _main(capsys, monkeypatch, *args):
    """The CLI in this process (no JAX start-up): ``(status, stdout, stderr)``."""
    monkeypatch.setattr(cli, "_enable_compilation_cache", lambda: None)  # leave this process's JAX config alone
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _one_line_error(err: str, message: str) -> bool:
    return message in err and len(err.strip().splitlines()) == 1 and err.startswith("error: ")


@pytest.fixture(scope="module")
def tiny_target(trained_tiny_run):
    return load_target(str(trained_tiny_run))


def _records(report: Path) -> list[dict]:
    return [json.loads(line) for line in (report / "examples.jsonl").read_text().splitlines()]


def _assert_string_truth(target, records):
    """A correctly classified example counts as a success exactly when its perturbed text, re-tokenised
    from the string, is classified away from its label; the setup has both outcomes, with substitutions."""
    attacked = [r for r in records if r["reason"] != "misclassified"]
    probs = string_probs(target.victim, target.params, target.tokenizer, [Example(r["perturbed_text"], r["label"]) for r in attacked])
    flipped = probs.argmax(-1) != [r["label"] for r in attacked]
    assert [r["success"] for r in attacked] == flipped.tolist()
    assert any(r["success"] for r in attacked) and any(not r["success"] and r["substitutions"] for r in attacked)


@pytest.fixture(scope="module")
def mixed_neighbours(tmp_path_factory):
    """Some candidates flip the sentiment (good -> boring, bad -> great), others keep it: attacks both
    succeed and fail after substituting."""
    path = tmp_path_factory.mktemp("syn-mixed") / "neighbours.json"
    path.write_text(json.dumps({"good": ["boring"], "great": ["good"], "bad": ["great"], "boring": ["bad"], "plot": ["film"], "film": ["plot"]}))
    return f"counterfitted:{path}"


@pytest.fixture(scope="module")
def neighbours(tmp_path_factory):
    """A Jia-format neighbour table over the tiny vocabulary (sentiment-flipping, no WordNet antonyms)."""
    path = tmp_path_factory.mktemp("syn") / "neighbours.json"
    path.write_text(json.dumps({"good": ["boring"], "great": ["boring"], "bad": ["great"], "boring": ["great"], "plot": ["film"]}))
    return f"counterfitted:{path}"


def test_attack_writes_every_report(trained_tiny_run, neighbours, tmp_path):
    out = tmp_path / "report"
    # Sentiment-flipping candidates, the constraints off: the report's mechanics (see test_constraints).
    proc = _cli("attack", "--workdir", trained_tiny_run, "--attack", "gradient", "--synonyms", neighbours,
                "--n", 1000, "--budget", 0.5, "--out", out, "--constraints", "none")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "notice: --n 1000 is larger than the test split" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    for key in ("clean_accuracy", "accuracy_under_attack", "attack_success_rate", "perturbed_word_pct",
                "mean_queries", "seconds", "examples_per_second", "n", "low_confidence_n", "success_rate_confident"):
        assert key in results
    assert results["accuracy_under_attack"] < results["clean_accuracy"]
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert len(records) == results["n"]
    for r in records:
        for key in ("index", "label", "original_text", "perturbed_text", "substitutions", "original_probs",
                    "perturbed_probs", "success", "skipped", "queries", "clean_prob_true", "low_confidence"):
            assert key in r
        assert r["clean_prob_true"] == r["original_probs"][r["label"]]
    assert results["low_confidence_n"] == sum(r["low_confidence"] for r in records)
    success = next(r for r in records if r["success"])
    html = (out / "examples.html").read_text()
    assert f"<ins>{success['substitutions'][0][2]}</ins>" in html
    rows = list(csv.DictReader((out / "textattack.csv").open()))
    assert len(rows) == len(records)
    assert sum(row["result_type"] == "Successful" for row in rows) == sum(r["success"] for r in records)
    # The validity of the successes, in results.json, at the top of the page and printed.
    v = results["validity"]
    assert v["n_successes"] == results["successes"] and v["n_substitutions"] == sum(len(r["substitutions"]) for r in records if r["success"])
    assert 0 <= v["synonym_share"] <= 1 and 0 <= v["pos_kept_share"] <= 1 and -1 <= v["similarity_min"] <= v["similarity_mean"] <= 1
    assert v["encoder"] == "bundle:minilm-l6" and html.index("Validity of the") < html.index("<h2>Examples</h2>")
    assert f"Validity of the {v['n_successes']} successful examples" in proc.stdout
    assert results["rules"] == {"pos": False, "similarity": None, "window": None, "metric": "cosine"}


@pytest.mark.parametrize("attack", ["gradient", "textfooler"])
def test_attack_applies_its_recipes_constraints_by_default(trained_tiny_run, tmp_path, capsys, monkeypatch, attack):
    """Without --constraints the recipe's apply: the report's name and results.json say which, and no
    success breaks them (part of speech and similarity re-measured here from the strings), while the
    same attack with --constraints none has successes that do."""
    from jaxrobust.attacks import constraints, pos
    from jaxrobust.attacks.sentence_encoder import SentenceEncoder
    from jaxrobust.attacks.validity import keeps_pos

    table = tmp_path / "synonyms.json"
    table.write_text(json.dumps({"good": ["great", "fine", "boring"], "great": ["good", "fine"], "bad": ["awful", "great"],
                                 "boring": ["dull", "good"], "film": ["movie", "picture"], "plot": ["story"]}))
    rules = constraints.RECIPES[attack]
    encoder, tagger = SentenceEncoder(), pos.tagger()

    def breaks(r):
        changed = [w for w, _, _ in r["substitutions"]]
        sim = constraints.string_similarity(encoder, rules, r["original_text"], r["perturbed_text"], changed)
        return not keeps_pos(r, tagger) or sim < rules.similarity - constraints.RECHECK_SLACK

    reports = {}
    for spec in ("default", "none"):
        status, out, err = _main(capsys, monkeypatch, "attack", "--workdir", trained_tiny_run, "--attack", attack,
                                 "--synonyms", f"counterfitted:{table}", "--n", 40, "--budget", 0.5,
                                 *(["--constraints", spec] if spec != "default" else []))
        assert status == 0, err[-2000:]
        reports[spec] = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    report = reports["default"]
    assert f"-{rules.tag}-" in report.name and report.parent == Path(trained_tiny_run).absolute() / "attacks"
    assert json.loads((report / "results.json").read_text())["rules"] == dataclasses.asdict(rules)
    assert not any(breaks(r) for r in _records(report) if r["success"])
    assert any(breaks(r) for r in _records(reports["none"]) if r["success"])


def test_attack_on_the_dev_split(trained_tiny_run, neighbours, capsys, monkeypatch):
    """``--split dev`` attacks a seeded sample of the run's dev split, never a test sentence, and names
    its report after the split (tuning reads it; a test report of the same settings is another file)."""
    target = load_target(str(trained_tiny_run))
    dev, test = target.splits["dev"], target.splits["test"]
    status, out, err = _main(capsys, monkeypatch, "attack", "--workdir", trained_tiny_run, "--split", "dev",
                             "--synonyms", neighbours, "--constraints", "none", "--n", 1000, "--budget", 0.5)
    assert status == 0, err[-2000:]
    report = Path(out.strip().splitlines()[-1].removeprefix("report: "))
    assert report.name.endswith(f"-n{len(dev)}-s0-dev")
    records = _records(report)
    assert [r["original_text"] for r in records] == [dev[r["index"]].text for r in records]
    assert sorted(r["index"] for r in records) == list(range(len(dev)))
    assert not {r["original_text"] for r in records} & {e.text for e in test}
    attacked = [r for r in records if r["reason"] != "misclassified"]
    probs = string_probs(target.victim, target.params, target.tokenizer, [Example(r["perturbed_text"], r["label"]) for r in attacked])
    assert [r["success"] for r in attacked] == (probs.argmax(-1) != [r["label"] for r in attacked]).tolist()


def test_sweep_writes_table_and_plot(trained_tiny_run, other_tiny_run, neighbours, tmp_path):
    """Two different runs stacked (the weaker first): every row of sweep.json and sweep.md is that
    run's own attack."""
    from jaxrobust.attacks.run import AttackSettings, attack_examples, sample_indices
    from jaxrobust.attacks.synonyms import load_synonyms

    out = tmp_path / "sweep"
    runs, budgets = [other_tiny_run, trained_tiny_run], [0.1, 0.5]
    proc = _cli("sweep", "--workdir", runs[0], "--workdir", runs[1], "--budgets", "0.1,0.5",
                "--synonyms", neighbours, "--n", 50, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = json.loads((out / "sweep.json").read_text())
    assert table["runs"] == [str(r) for r in runs] and table["budgets"] == budgets
    rows = [line.strip("|").split("|") for line in (out / "sweep.md").read_text().splitlines() if line.startswith("| ") and not line.startswith("| run ")]
    assert [row[0].strip() for row in rows] == [str(r) for r in runs]
    candidates = load_synonyms(neighbours, k=20, min_cos=0.8).candidates
    for r, run in enumerate(runs):
        target = load_target(str(run))
        indices = sample_indices(len(target.test), table["n"], 0)
        for b, budget in enumerate(budgets):
            settings = AttackSettings(attack="gradient", synonyms=neighbours, n=table["n"], budget=budget)
            records, _ = attack_examples(target.victim, target.params, target.tokenizer, [target.test[i] for i in indices],
                                         indices, candidates, settings, progress=False)
            robust = np.mean([x["reason"] != "misclassified" and not x["success"] for x in records])
            assert table["accuracy_under_attack"][r][b] == pytest.approx(robust), (run, budget)
            assert float(rows[r][2 + b]) == pytest.approx(robust, abs=5e-4), (run, budget)
        assert float(rows[r][1]) == pytest.approx(table["clean_accuracy"][r], abs=5e-4)
    assert (out / "robust_accuracy_vs_budget.png").read_bytes()[:4] == b"\x89PNG"
    assert proc.stdout.strip().endswith(f"report: {out.absolute()}")


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


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["textfooler", "pwws", "genetic", "ascc"])
def test_each_attack_writes_a_report_whose_successes_flip(trained_tiny_run, tiny_target, mixed_neighbours, tmp_path, attack):
    out = tmp_path / attack
    flags = ["--population", 12, "--generations", 4] if attack == "genetic" else []
    proc = _cli("attack", "--workdir", trained_tiny_run, "--attack", attack, "--synonyms", mixed_neighbours,
                "--n", 10, "--budget", 0.5, "--out", out, "--constraints", "none", *flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results, records = json.loads((out / "results.json").read_text()), _records(out)
    assert results["attack"] == attack and results["n"] == len(records) == 10
    assert results["successes"] == sum(r["success"] for r in records)
    _assert_string_truth(tiny_target, records)


@pytest.fixture(scope="module")
def exported_tiny_model(trained_tiny_run, tmp_path_factory):
    """The tiny run's best model in Hugging Face format, and a CSV of its task with other column names."""
    from jaxrobust.models import export_classifier
    from jaxrobust.train import load_run

    root = tmp_path_factory.mktemp("exported")
    _, prepared = load_run(trained_tiny_run)
    export_classifier(prepared.classifier, root / "model", prepared.task.label_names)
    data = root / "reviews.csv"
    data.write_text("sentence,y\n" + "".join(f"{t},{label}\n" for t, label in ATTACK_SENTENCES))
    return root / "model", f"csv:{data}"


@pytest.mark.slow
def test_attack_an_exported_model_on_a_csv_task(exported_tiny_model, mixed_neighbours, tmp_path):
    """--model with --task csv: and its --*-field flags; without --out the report goes to
    ./attacks/NAME, named after the examples attacked (not --n 500), and its absolute path is printed."""
    model, task = exported_tiny_model
    cwd = tmp_path / "here"
    cwd.mkdir()
    proc = _cli("attack", "--model", model, "--task", task, "--text-field", "sentence", "--label-field", "y",
                "--max-length", 16, "--synonyms", mixed_neighbours, "--n", 500, "--budget", 0.5, "--constraints", "none", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (report,) = (cwd / "attacks").iterdir()
    results = json.loads((report / "results.json").read_text())
    assert results["n"] < 500 and report.name.endswith(f"-n{results['n']}-s0")
    printed = Path(proc.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert printed.is_absolute() and printed.resolve() == report.resolve()
    target = load_target(model=str(model), task=task, max_length=16, text_field="sentence", label_field="y")
    assert results["n"] == len(target.test) and results["clean_accuracy"] > 0.8
    _assert_string_truth(target, _records(report))


def test_low_confidence_examples_are_counted_and_warned_about(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """The untrained tiny model gives every text p ~ 0.5: a success rate over such examples is noise."""
    directory, _ = tiny_model_dir("bert", num_labels=2)
    data = tmp_path / "tiny.csv"
    data.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in ATTACK_SENTENCES))
    neighbours = tmp_path / "nb.json"
    neighbours.write_text(json.dumps({"good": ["bad"], "bad": ["good"], "great": ["boring"], "boring": ["great"]}))
    out = tmp_path / "report"
    status, stdout, err = _main(capsys, monkeypatch, "attack", "--model", directory, "--task", f"csv:{data}", "--max-length", 16,
                                "--synonyms", f"counterfitted:{neighbours}", "--n", 20, "--out", out)
    assert status == 0, err
    results, records = json.loads((out / "results.json").read_text()), _records(out)
    correct = [r for r in records if r["reason"] != "misclassified"]
    assert correct and all(r["low_confidence"] and r["clean_prob_true"] < 0.6 for r in correct)
    assert results["low_confidence_n"] == len(correct) and results["success_rate_confident"] is None
    assert f"warning: {len(correct)} of {len(correct)} correctly classified examples" in err
    assert "low confidence" in (out / "examples.html").read_text()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch-size", 0], "--batch-size must be at least 1"),
        (["--attack", "genetic", "--population", 0], "--population must be at least 1"),
        (["--attack", "genetic", "--generations", 0], "--generations must be at least 1"),
        (["--attack", "ascc", "--ascc-steps", 0], "--ascc-steps must be at least 1"),
        (["--k", 0], "--k must be at least 1"),
        (["--min-cos", 2], "--min-cos must be a cosine in [-1, 1]"),
        (["--budget", -0.1], "budget must be in (0, 1]"),
        (["--n", 0], "--n must be at least 1"),
        (["--n", -3], "--n must be at least 1"),
        (["--model", "m"], "not both"),
        (["--task", "sst2"], "go with --model"),
        (["--text-field", "sentence"], "go with --model"),
        (["--synonyms", "counterfitted:/no/such/file.json"], "no such file"),
        (["--synonyms", "counterfitted:"], "needs a file"),
    ],
)
def test_more_bad_attack_flags_are_one_line(trained_tiny_run, capsys, monkeypatch, flags, message):
    status, _, err = _main(capsys, monkeypatch, "attack", "--workdir", trained_tiny_run, "--n", 5, *flags)
    assert status == 2 and _one_line_error(err, message), err


def test_model_without_task_and_task_without_model_are_one_line(capsys, monkeypatch):
    status, _, err = _main(capsys, monkeypatch, "attack", "--model", "some/model")
    assert status == 2 and _one_line_error(err, "--model needs --task"), err
    status, _, err = _main(capsys, monkeypatch, "attack", "--task", "sst2")
    assert status == 2 and _one_line_error(err, "give --workdir RUN"), err


@pytest.mark.parametrize("k", [0, -1])
def test_synonyms_describe_refuses_k_below_one(neighbours, capsys, monkeypatch, k):
    status, _, err = _main(capsys, monkeypatch, "synonyms", "describe", neighbours, "--k", k)
    assert status == 2 and _one_line_error(err, "k must be"), err


@pytest.mark.parametrize("budgets", ["", ",", "0.1,abc", "1.5", "0,0.1"])
def test_bad_sweep_budgets_are_one_line(trained_tiny_run, capsys, monkeypatch, budgets):
    status, _, err = _main(capsys, monkeypatch, "sweep", "--workdir", trained_tiny_run, "--budgets", budgets)
    assert status == 2 and _one_line_error(err, "--budgets must"), err


def _copy_run(run: Path, to: Path, **changes) -> Path:
    """A copy of ``run`` (the same trained weights) whose config.json says ``changes``."""
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("attacks", "sweeps"))
    config = json.loads((to / "config.json").read_text())
    (to / "config.json").write_text(json.dumps({**config, **changes}))
    return to


def test_sweep_of_runs_of_other_tasks_or_shapes_is_one_line(trained_tiny_run, neighbours, tmp_path, capsys, monkeypatch):
    task_file = Path(json.loads((trained_tiny_run / "config.json").read_text())["task"].partition(":")[2])
    shutil.copy(task_file, tmp_path / "same_rows.csv")
    other_task = _copy_run(trained_tiny_run, tmp_path / "other-task", task=f"csv:{tmp_path / 'same_rows.csv'}")
    shorter = _copy_run(trained_tiny_run, tmp_path / "shorter", max_length=8, buckets=[8])
    for other, message in ((other_task, "cannot sweep runs of different tasks"), (shorter, "differ in architecture or settings")):
        status, _, err = _main(capsys, monkeypatch, "sweep", "--workdir", trained_tiny_run, "--workdir", other,
                               "--synonyms", neighbours, "--n", 5)
        assert status == 2 and _one_line_error(err, message), err


# --- Ctrl-C ---------------------------------------------------------------------------------------


def test_interrupt_is_raised_where_it_is_safe_and_never_lost():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with interrupt.handle_sigint():
            signal.raise_signal(signal.SIGINT)
            time.sleep(5)  # never reached: raised at once in plain Python code
    # Swallowed (as a library's bare except does): re-delivered until the command stops.
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        with interrupt.handle_sigint():
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass
            for _ in range(100):
                time.sleep(0.05)
    assert time.perf_counter() - start < 4
    # Held while a report is written, raised right after it; and nothing is left behind.
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.handle_sigint():
            with interrupt.deferred():
                signal.raise_signal(signal.SIGINT)
                done.append("written")
    assert done == ["written"] and signal.getsignal(signal.SIGINT) == before
    with interrupt.handle_sigint():
        pass  # no Ctrl-C: nothing raised
    interrupt.check()


def test_interrupt_waits_for_cleanup_code():
    """Code handling an exception (cleanup on the way out) is not cut short; the interrupt follows it."""
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.handle_sigint():
            try:
                raise OSError("disk full")
            except OSError:
                signal.raise_signal(signal.SIGINT)
                done.append("cleaned up")
            for _ in range(100):
                time.sleep(0.05)
    assert done == ["cleaned up"]


def test_interrupt_inside_a_finalizer_waits_until_it_returns():
    """A finalizer (``__del__``, run by the garbage collector wherever it runs) never sees the
    KeyboardInterrupt, which Python would print as "Exception ignored" and drop: it comes after."""
    results = []

    class Finalized:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)
            time.sleep(0.3)
            results.append("finalized")

    with pytest.raises(KeyboardInterrupt):
        with interrupt.handle_sigint():
            Finalized()  # collected at once: its __del__ runs here
            for _ in range(100):
                time.sleep(0.05)  # the re-delivery raises here
    assert results == ["finalized"]


def test_interrupt_inside_jax_waits_until_jax_returns():
    """Code of the jax package (JAX's own Python callbacks, say) never sees the KeyboardInterrupt:
    it comes as soon as control is back outside."""
    inside = {"__name__": "jax._src.fake"}
    exec("import signal, time\ndef work():\n    signal.raise_signal(signal.SIGINT)\n    time.sleep(0.5)\n    return 'done'", inside)
    results = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt.handle_sigint():
            results.append(inside["work"]())
            for _ in range(100):
                time.sleep(0.05)  # the re-delivery raises here
    assert results == ["done"]


def _run_and_interrupt(args, when, timeout=180):
    """Start the CLI, send SIGINT ``when`` seconds after the start or, for "bar", once the progress bar
    is on stderr; ``(returncode, stderr)``."""
    proc = subprocess.Popen([sys.executable, "-m", "jaxrobust", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err, start = b"", time.monotonic()
    try:
        if when == "bar":
            while b" attack:" not in err:
                assert time.monotonic() - start < timeout and proc.poll() is None, err.decode()[-2000:]
                if select.select([proc.stderr], [], [], 0.1)[0]:
                    err += os.read(proc.stderr.fileno(), 65536)
        else:
            time.sleep(when)
        assert proc.poll() is None, "the command ended before the interrupt: make it longer"
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, (err + rest).decode()


@pytest.fixture(scope="module")
def slow_neighbours(tmp_path_factory):
    """Candidates that keep the sentiment: no attack succeeds, so a search runs to its end (long enough to interrupt)."""
    path = tmp_path_factory.mktemp("syn-slow") / "neighbours.json"
    path.write_text(json.dumps({"good": ["great"], "great": ["good"], "bad": ["boring"], "boring": ["bad"], "plot": ["film"], "film": ["plot"]}))
    return f"counterfitted:{path}"


@pytest.mark.slow
@pytest.mark.parametrize("when", [1.0, 3.0, "bar"])
def test_ctrl_c_stops_an_attack_with_130_and_no_report(trained_tiny_run, slow_neighbours, tmp_path, when):
    out = tmp_path / "report"
    status, err = _run_and_interrupt(["attack", "--workdir", trained_tiny_run, "--attack", "genetic", "--synonyms", slow_neighbours,
                                      "--n", 500, "--budget", 0.5, "--population", 400, "--generations", 200, "--out", out], when)
    assert status == 130, err[-3000:]
    assert err.rstrip().endswith("interrupted") and "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    assert not out.exists() or not any(out.iterdir())  # no results.json, no partial files


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_with_130_and_no_table(trained_tiny_run, slow_neighbours, tmp_path):
    out = tmp_path / "sweep"
    status, err = _run_and_interrupt(["sweep", "--workdir", trained_tiny_run, "--workdir", trained_tiny_run,
                                      "--synonyms", slow_neighbours, "--out", out], 3.0)
    assert status == 130 and err.rstrip().endswith("interrupted") and "Traceback" not in err, err[-3000:]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("command, theirs", [("attack", "results.json"), ("sweep", "sweep.md")])
def test_out_never_replaces_a_users_files(command, theirs, trained_tiny_run, neighbours, tmp_path, capsys, monkeypatch):
    """``--out`` a folder holding a file of the name a report or sweep writes, that jaxrobust did not
    write: refused before anything runs, the user's files byte-identical; a new folder is marked
    and may then be written again."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / theirs).write_text("my own results")
    (mine / "notes.txt").write_text("keep")
    flags = ["--budget", "0.5"] if command == "attack" else ["--budgets", "0.5"]
    status, _, err = _main(capsys, monkeypatch, command, "--workdir", str(trained_tiny_run), "--synonyms", neighbours,
                           "--n", "4", *flags, "--out", str(mine))
    assert status == 2 and f"holds {theirs} that jaxrobust did not write; choose another --out" in err
    assert (mine / theirs).read_text() == "my own results" and sorted(p.name for p in mine.iterdir()) == sorted([theirs, "notes.txt"])
    fresh = tmp_path / "fresh"
    for _ in range(2):  # the second time, the folder is jaxrobust's own output
        status, _, err = _main(capsys, monkeypatch, command, "--workdir", str(trained_tiny_run), "--synonyms", neighbours,
                               "--n", "4", *flags, "--out", str(fresh))
        assert status == 0, err
    assert (fresh / theirs).is_file()
