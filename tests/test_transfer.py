"""The transfer study on tiny tasks and a tiny model: its protocol, rows, ledger, tables and config checks."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import ATTACK_SENTENCES, NEGATIVE, POSITIVE
from jaxrobust.configs import load_config
from jaxrobust.errors import JaxRobustError
from jaxrobust.transfer import check_transfer_config, run_transfer, transfer_config


def _task(folder, name: str, rows: list[tuple[str, str]]) -> str:
    path = folder / f"{name}.csv"
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    return f"csv:{path}"


@pytest.fixture
def tiny_transfer(tiny_model_dir, tmp_path):
    """Two tiny sentiment tasks, the second with its own label names (bad/good), and the tiny BERT."""
    model, _ = tiny_model_dir("bert", num_labels=2)
    a = _task(tmp_path, "alpha", [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE])
    b = _task(tmp_path, "beta", [(t, "good" if label == "pos" else "bad") for t, label in ATTACK_SENTENCES])
    c = transfer_config()
    c.tasks = (a, b)
    c.label_map.beta = "bad=neg,good=pos"
    c.models.tiny = str(model)
    c.model_names, c.seeds = ("tiny",), (0,)
    c.source_train, c.target_train, c.eval_subset = 0, 0, 0
    c.source_epochs, c.target_epochs = 6, 6
    c.training.update(lr=1e-2, batch_size=8, eval_batch_size=16, max_length=16, buckets=(16,), warmup_ratio=0.0)
    c.n_examples, c.budget, c.query_budget = 20, 0.5, 30
    c.ledger, c.machine = str(tmp_path / "ledger"), "test"
    return c


@pytest.mark.slow
def test_transfer_study_protocol_rows_and_ledger(tiny_transfer, tmp_path):
    from sklearn.metrics import f1_score

    from jaxrobust.data.conventions import conventions
    from jaxrobust.data.encoding import encode
    from jaxrobust.train import evaluate, load_run, task_of

    c, workdir = tiny_transfer, tmp_path / "study"
    found = run_transfer(c, workdir)
    runs = workdir / "runs" / "tiny"
    assert sorted(p.name for p in runs.iterdir()) == [
        "baseline-alpha-s0", "baseline-beta-s0", "source-alpha-s0", "source-beta-s0", "transfer-alpha-beta-s0", "transfer-beta-alpha-s0"]
    # The transfer stage continues from the source stage's selected model, on the target's data, as the baseline trains.
    transfer = json.loads((runs / "transfer-alpha-beta-s0" / "config.json").read_text())
    baseline = json.loads((runs / "baseline-beta-s0" / "config.json").read_text())
    assert transfer["model"] == str(runs / "source-alpha-s0") and baseline["model"] == c.models.tiny
    assert {k: v for k, v in transfer.items() if k != "model"} == {k: v for k, v in baseline.items() if k != "model"}
    assert transfer["select_on"] == "loss"

    rows = found["rows"]
    assert found["missing"] == [] and len(rows) == 8  # (2 baselines + 2 transfers) x 2 attacks
    assert not any(r["collapsed"] for r in rows)  # every arm learned: the deltas below are all there
    for r in rows:
        run = runs / (f"baseline-{r['target']}-s0" if r["arm"] == "baseline" else f"transfer-{r['source']}-{r['target']}-s0")
        (report,) = [p for p in (run / "attacks").iterdir() if p.name.startswith(r["attack"] + "-")]
        summary = json.loads((report / "results.json").read_text())
        assert "-q30-" in report.name and summary["query_budget"] == 30
        assert r["accuracy_under_attack"] == summary["accuracy_under_attack"] and r["clean_accuracy"] == summary["clean_accuracy"]
        records = [json.loads(line) for line in (report / "examples.jsonl").read_text().splitlines()]
        assert all(x["queries"] <= 30 for x in records)
        labels = [x["label"] for x in records]
        before = [int(np.argmax(x["original_probs"])) for x in records]
        after = [1 - x["label"] if x["success"] else b for x, b in zip(records, before)]
        assert r["f1_before"] == pytest.approx(f1_score(labels, before, zero_division=0))
        assert r["f1_after"] == pytest.approx(f1_score(labels, after, zero_division=0))
        assert r["confidence"] == pytest.approx(np.mean([abs(x["original_probs"][1] - 0.5) for x in records]))
    # Forgetting: the source stage and the transfer model, each on the source's whole test split.
    for r in (r for r in rows if r["arm"] == "transfer"):
        for key, run in (("source_accuracy_before", f"source-{r['source']}-s0"), ("source_accuracy_after", f"transfer-{r['source']}-{r['target']}-s0")):
            config, prepared = load_run(runs / run)
            config.task = next(t for t in c.tasks if t.endswith(f"/{r['source']}.csv"))
            test = encode(prepared.classifier.tokenizer, task_of(config).load().test, config.max_length)
            got = evaluate(prepared.classifier.model, test, config, conventions(prepared.classifier.tokenizer).pad_id, 2)
            assert r[key] == got["accuracy"]
    with open(workdir / "transfer.csv") as f:
        assert [row["arm"] for row in csv.DictReader(f)] == [r["arm"] for r in rows]
    for name in ("heatmap_tiny_gradient.png", "heatmap_tiny_textfooler.png", "heatmap_tiny_gradient_success.png", "heatmap_tiny_clean.png"):
        assert (workdir / name).read_bytes()[:4] == b"\x89PNG"
    summary = (workdir / "summary.md").read_text()
    assert "**tiny, gradient**" in summary and "2 pairs" in summary and "Missing cells: none." in summary
    assert "| tiny | alpha | beta |" in (workdir / "forgetting.md").read_text()
    # A finished run keeps its selected model but not its resume checkpoints (never resumed).
    assert all((run / "best").is_dir() and not (run / "checkpoints").exists() for run in runs.iterdir())

    # keep_models off: every run whose cell the ledger holds whole gives up its models, keeping its
    # results and reports; nothing is trained again and the rows stay.
    finished = {run.name: (run / "results.json").read_text() for run in runs.iterdir()}
    c.keep_models = False
    assert run_transfer(c, workdir)["rows"] == rows
    assert {run.name: (run / "results.json").read_text() for run in runs.iterdir()} == finished
    assert [run.name for run in runs.iterdir() if (run / "best").exists() or (run / "checkpoints").exists()] == []
    assert all(any((run / "attacks").iterdir()) for run in runs.iterdir() if not run.name.startswith("source-"))
    c.keep_models = True

    # The committed ledger alone gives the same rows on a machine without runs/; nothing is trained.
    shutil.rmtree(workdir)
    c.train = False
    again = run_transfer(c, workdir)
    assert again["rows"] == rows and not (workdir / "runs").exists()
    # Cells recorded before a setting existed (here dtype) ran with its default: they still count, the
    # transfer cells' source stages included.
    for cell in Path(c.ledger).glob("*.json"):
        entry = json.loads(cell.read_text())
        for config in (entry["config"], entry["config"].get("source_stage", {})):
            config.pop("dtype", None)
        cell.write_text(json.dumps(entry))
    assert run_transfer(c, workdir)["rows"] == rows


def test_label_sets_must_agree_or_be_mapped(tiny_transfer):
    check_transfer_config(tiny_transfer)
    del tiny_transfer.label_map["beta"]
    with pytest.raises(JaxRobustError, match=r"tasks .*alpha\.csv and .*beta\.csv have different labels \(neg, pos vs bad, good\)"):
        check_transfer_config(tiny_transfer)


@pytest.mark.parametrize("key, value, message", [
    ("tasks", ("rotten_tomatoes", "no_such_task"), "unknown task 'no_such_task'"),
    ("query_budget", -1, "--config.query_budget must be at least 1, or 0 for none"),
    ("attacks", ("gradient", "bertattack"), "--attack bertattack needs --mlm REF"),
    ("model_names", ("huge",), "unknown model 'huge'"),
])
def test_bad_study_settings(key, value, message):
    c = load_config("transfer_study")
    c[key] = value
    with pytest.raises(JaxRobustError, match=message):
        check_transfer_config(c)


def test_the_study_configs():
    c = load_config("transfer_study")
    check_transfer_config(c)
    assert len(c.tasks) == 4 and c.model_names == ("minilm", "mpnet", "smollm2") and c.query_budget == 80
    small = load_config("transfer_study:small")
    assert small.pairs == ("vader_amazon>rotten_tomatoes",) and small.model_names == ("minilm",) and small.ledger == c.ledger
    mbib = load_config("transfer_mbib")
    assert mbib.seeds == (1, 42, 1234) and mbib.training.lr == 2e-5 and mbib.training.max_length == 256
    assert mbib.attacks == ("gradient", "textfooler", "bertattack") and mbib.offline_alternative == "transfer_study"


@pytest.mark.slow
def test_transfer_mbib_pipeline_on_tiny_files(tiny_model_dir, tiny_mlm_dir, tmp_path):
    """``transfer_mbib`` as configured (its training settings, select on dev loss, A2T-like, TextFooler
    and BERT-Attack with a query budget), on tiny local files shaped like the MBIB splits (text, label
    unbiased/biased) and tiny random models instead of the hub's."""
    c = load_config("transfer_mbib")
    pos, neg = [t for t in POSITIVE], [t for t in NEGATIVE]
    c.tasks = tuple(_task(tmp_path, name, [(t, "biased") for t in pos[i::3]] + [(t, "unbiased") for t in neg[i::3]])
                    for i, name in enumerate(("mbib_hate_speech", "mbib_political_bias", "mbib_gender_bias")))
    c.pairs = (f"{c.tasks[0]}>{c.tasks[1]}",)
    c.models = {"bert": str(tiny_model_dir("bert", num_labels=2)[0])}
    c.model_names, c.seeds, c.mlm = ("bert",), (1,), str(tiny_mlm_dir("bert")[0])
    c.training.update(lr=1e-2, max_length=16, buckets=(16,), eval_batch_size=16)
    c.source_epochs, c.target_epochs, c.n_examples, c.budget = 4, 4, 20, 0.5
    c.ledger = str(tmp_path / "ledger")
    found = run_transfer(c, tmp_path / "study")
    assert found["missing"] == []
    assert sorted({(r["arm"], r["attack"]) for r in found["rows"]}) == [
        (arm, attack) for arm in ("baseline", "transfer") for attack in ("bertattack", "gradient", "textfooler")]
    reports = list((tmp_path / "study" / "runs" / "bert").glob("*/attacks/bertattack-*"))
    assert len(reports) == 2 and all("-q80-" in p.name for p in reports)
    assert all(r["mean_queries"] is None or r["mean_queries"] <= 80 for r in found["rows"])


def test_a_run_that_never_learned_is_left_out_of_the_deltas():
    from jaxrobust.transfer import deltas

    row = lambda arm, source, seed, clean, attacked, collapsed=False: {
        "model": "m", "arm": arm, "source": source, "target": "t", "seed": seed, "attack": "gradient",
        "clean_accuracy": clean, "accuracy_under_attack": attacked, "collapsed": collapsed}
    table = [row("baseline", "none", 0, 0.8, 0.5), row("baseline", "none", 1, 0.55, 0.55, collapsed=True),
             row("transfer", "s", 0, 0.85, 0.4), row("transfer", "s", 1, 0.8, 0.3), row("transfer", "u", 0, 0.55, 0.55, collapsed=True)]
    assert deltas(table, "m", "accuracy_under_attack", "gradient") == {("s", "t"): [pytest.approx(-0.1)]}


def test_the_study_fills_model_by_model(tiny_transfer, tmp_path, monkeypatch):
    """Every seed of the first model before the second model's first: a study stopped part-way has
    whole heatmaps (with their seed spread) for the models it reached."""
    import jaxrobust.transfer as transfer

    order = []
    monkeypatch.setattr(transfer, "_fill_model_seed", lambda config, workdir, model, seed, settings: order.append((model, seed)))
    monkeypatch.setattr(transfer, "write_transfer_tables", lambda config, workdir: {})
    c = tiny_transfer
    c.models.other = c.models.tiny
    c.model_names, c.seeds = ("tiny", "other"), (0, 1)
    run_transfer(c, tmp_path / "study")
    assert order == [("tiny", 0), ("tiny", 1), ("other", 0), ("other", 1)]


def test_the_summary_relates_size_and_counts_what_is_missing():
    from jaxrobust.transfer import missing_markdown, size_markdown

    row = lambda model, arm, source, seed, attacked, success: {
        "model": model, "arm": arm, "source": source, "target": "t", "seed": seed, "attack": "gradient",
        "clean_accuracy": 0.8, "accuracy_under_attack": attacked, "attack_success_rate": success, "collapsed": False}
    table = [row("small", "baseline", "none", 0, 0.5, 0.3), row("small", "transfer", "s", 0, 0.4, 0.5),
             row("large", "baseline", "none", 0, 0.5, 0.3), row("large", "transfer", "s", 0, 0.45, 0.4)]
    sizes = {"large": 100_000_000, "small": 20_000_000, "unrun": 300_000_000}
    (line,) = [x for x in size_markdown(sizes, table, ("gradient",)) if x]
    assert "Mean Δ of accuracy under attack, smallest model first: small gradient -10.0; large gradient -5.0. gradient: Δ rises with size." in line
    assert "Mean Δ of attack success rate, smallest model first: small gradient +20.0; large gradient +10.0. gradient: Δ falls with size." in line
    assert line.endswith("Not measured yet: unrun.")
    table[-1]["accuracy_under_attack"] = 0.3
    assert "gradient -5.0" not in size_markdown(sizes, table, ("gradient",))[-1]
    assert "large gradient -20.0. gradient: Δ falls with size." in size_markdown(sizes, table, ("gradient",))[-1]
    provisional = size_markdown(sizes, table, ("gradient",), partial={"large"})[-1]
    assert "large (partial) gradient -20.0. gradient: Δ falls with size (provisional: partial cells)." in provisional

    assert missing_markdown([]) == "Missing cells: none."
    few = [("m", 0, "m transfer s>t seed 0 (textfooler)")]
    assert missing_markdown(few) == "Missing cells: m transfer s>t seed 0 (textfooler)."
    many = [("m", seed, f"cell {i}") for seed in (0, 1) for i in range(5)]
    assert missing_markdown(many) == "Missing cells: 10 (m seed 0: 5, m seed 1: 5)."
