"""The robustness study on the tiny model: cells are trained, attacked, cached and tabulated."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from jaxrobust import cli
from jaxrobust.configs import load_config
from jaxrobust.study import (
    _fmt, _stats, find_run, read_ledger, record_cell, run_config, run_study, study_config, summarize_cells, table_markdown,
)

TINY_EXPERIMENT = '''
from jaxrobust.train import default_config

def get_config(arg=None):
    c = default_config()
    c.task, c.model = {task!r}, {model!r}
    c.max_length, c.buckets, c.batch_size, c.eval_batch_size = 16, (16,), 8, 16
    c.epochs, c.lr, c.warmup_ratio, c.checkpoint_every_steps = 6, 1e-2, 0.0, 100  # both seeds learn: none is left out as collapsed
    return c
'''


@pytest.fixture
def tiny_study(tiny_config, tmp_path):
    (tmp_path / "tiny_ft.py").write_text(TINY_EXPERIMENT.format(task=tiny_config.task, model=tiny_config.model))
    c = study_config()
    c.experiments.ft = str(tmp_path / "tiny_ft.py")
    c.methods, c.seeds, c.attacks = ("ft",), (0, 1), ("gradient", "genetic")
    c.n_examples, c.budget = 8, 0.5  # the tiny test split has 10 examples
    c.synonyms.update(source="wordnet", k=4, min_cos=0.0)
    c.genetic.update(n=5, population=4, generations=2)
    c.machine = "test"
    return c


@pytest.mark.slow
def test_study_trains_attacks_caches_and_tabulates(tiny_study, tmp_path, capsys):
    workdir = tmp_path / "study"
    table = run_study(tiny_study, workdir)
    assert table["missing"] == [] and table["collapsed"] == []
    entry = table["methods"]["ft"]
    cells = []
    for seed in (0, 1):
        run = workdir / "runs" / f"ft-s{seed}"
        assert json.loads((run / "config.json").read_text())["seed"] == seed
        cells.append({p.parent.name.split("-")[0]: json.loads(p.read_text()) for p in run.glob("attacks/*/results.json")})
    for attack, n in (("gradient", 8), ("genetic", 5)):
        values = [c[attack]["accuracy_under_attack"] for c in cells]
        stats = entry["attacks"][attack]["accuracy_under_attack"]
        assert stats["mean"] == pytest.approx(np.mean(values)) and stats["std"] == pytest.approx(np.std(values, ddof=1))
        assert stats["n_seeds"] == 2 and entry["attacks"][attack]["n_examples"] == n
        inter = entry["attacks"][attack]["intersection_accuracy_under_attack"]["mean"]
        assert 0 <= inter <= 1 and table["intersection_n_examples"][attack] <= n
    assert entry["clean_accuracy"]["mean"] == pytest.approx(np.mean([c["gradient"]["clean_accuracy"] for c in cells]))
    md = (workdir / "robustness_table.md").read_text()
    results = [json.loads((workdir / "runs" / f"ft-s{seed}" / "results.json").read_text()) for seed in (0, 1)]
    test_mean = np.mean([r["test_accuracy"] for r in results])
    assert entry["test_accuracy"]["mean"] == pytest.approx(test_mean)
    # The classifier's size and training speed, as the runs recorded them.
    params, speed = results[0]["parameters"], np.mean([r["examples_per_second"] for r in results])
    assert entry["parameters"] == params and entry["train_examples_per_second"]["mean"] == pytest.approx(speed)
    assert f"| ft | {params / 1e6:.1f}M | {speed:.1f} | {100 * test_mean:.1f} ± " in md and "Missing cells: none." in md
    assert (workdir / "robustness.png").stat().st_size > 0 and (workdir / "frontier.png").stat().st_size > 0
    # Every (seed, attack) cell is a point of its attack's frontier panel, at the report's accuracies.
    for attack in ("gradient", "genetic"):
        pts = table["frontier"][attack]["points"]
        assert sorted((p["clean"], p["attacked"]) for p in pts) == sorted(
            (c[attack]["clean_accuracy"], c[attack]["accuracy_under_attack"]) for c in cells)
        assert table["frontier"][attack]["frontier"]
    assert "Under gradient, the frontier holds ft" in (workdir / "summary.md").read_text()

    # A second sitting recomputes nothing; an extra seed without training is listed as missing.
    stamps = {p: p.stat().st_mtime_ns for p in workdir.glob("runs/*/**/results.json")}
    tiny_study.seeds, tiny_study.train = (0, 1, 2), False
    again = run_study(tiny_study, workdir)
    assert {p: p.stat().st_mtime_ns for p in workdir.glob("runs/*/**/results.json")} == stamps
    assert again["missing"] == ["ft seed 2: training run"]
    assert again["methods"]["ft"]["attacks"]["gradient"] == entry["attacks"]["gradient"]

    # The experiment command prints the table, then where the plot and the adversarial examples are.
    from jaxrobust import cli

    capsys.readouterr()
    assert cli._study(tiny_study, workdir) == 0
    out = capsys.readouterr().out
    assert "| ft |" in out and f"plot: {workdir / 'robustness.png'}" in out
    pages = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("adversarial examples: ")]
    assert len(pages) == 4 and all(Path(p).is_file() and p.endswith("examples.html") for p in pages)  # 2 seeds x 2 attacks


def test_train_command_refuses_a_study(capsys, tmp_path):
    assert cli.main(["train", "--config", "robustness_minilm", "--workdir", str(tmp_path / "x")]) == 2
    assert "is a study" in capsys.readouterr().err


def test_override_shorthands():
    c = load_config("robustness_minilm", ["--config.methods=ft,rift", "--config.seeds=0"])
    assert c.methods == ("ft", "rift") and c.seeds == (0,)  # comma-separated tuples
    assert load_config("robustness_minilm", ["--config.seeds=(1, 2)"]).seeds == (1, 2)
    # A settings group with a source takes a bare string as its source.
    synonyms = load_config("rift_bert", ["--config.synonyms=counterfitted:/data/neighbours.json"]).synonyms
    assert synonyms.source == "counterfitted:/data/neighbours.json" and synonyms.k == 8


def test_the_jia_check_attacks_the_main_studys_ft_and_rift_models_with_the_given_table(tmp_path):
    from jaxrobust.study import attack_settings, run_config

    table = tmp_path / "neighbours.json"
    table.write_text('{"good": ["fine"]}')
    main = load_config("robustness_minilm")
    jia = load_config("robustness_minilm_jia", [f"--config.synonyms=counterfitted:{table}"])
    assert jia.methods == ("ft", "rift") and jia.ledger != main.ledger
    for method in jia.methods:  # the same training runs: found and reused, never retrained
        assert run_config(jia, method, 1).to_json() == run_config(main, method, 1).to_json()
    for attack in main.attacks:  # the same attacks on the same sample, only the candidates differ
        ours, theirs = attack_settings(jia, attack), attack_settings(main, attack)
        assert ours.synonyms == f"counterfitted:{table}" and ours.name != theirs.name
        assert dataclasses.replace(ours, synonyms=theirs.synonyms) == theirs


def test_one_seed_has_no_std():
    """A sample std needs two seeds: one seed is reported without a made-up ± 0.0."""
    one, two = _stats([0.5]), _stats([0.5, 0.7])
    assert one["std"] is None and _fmt(one) == "50.0 (1)"
    assert two["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1)) and _fmt(two) == "60.0 ± 14.1 (2)"


@pytest.mark.slow
def test_ledger_keeps_the_table_when_the_runs_are_gone(tiny_study, tmp_path):
    """Finished cells recorded in the ledger tabulate the same without their run directories; the ledger
    holds only the study's own attacks, and a ledger entry of another run config is not used."""
    import shutil

    tiny_study.seeds, tiny_study.attacks, tiny_study.ledger = (0,), ("gradient",), str(tmp_path / "ledger")
    first = run_study(tiny_study, tmp_path / "study")
    assert sorted(p.name for p in (tmp_path / "ledger").iterdir()) == ["ft-s0.json"]
    run = tmp_path / "study" / "runs" / "ft-s0"
    (report,) = (run / "attacks").iterdir()
    shutil.copytree(report, run / "attacks" / "run-by-hand")  # an attack of the user's, not the study's
    record_cell(tiny_study, "ft", 0, run)
    assert list(json.loads((tmp_path / "ledger" / "ft-s0.json").read_text())["attacks"]) == [report.name]
    shutil.rmtree(tmp_path / "study")
    again = run_study(tiny_study, tmp_path / "study")  # training allowed, but nothing is recomputed
    assert not (tmp_path / "study" / "runs").exists()
    assert again["missing"] == [] and again["methods"] == first["methods"]
    tiny_study.train = False
    entry = json.loads((tmp_path / "ledger" / "ft-s0.json").read_text())
    # A cell recorded before a setting existed ran with that setting's default: it still counts.
    older = {**entry, "config": {k: v for k, v in entry["config"].items() if k != "infobert"}}
    (tmp_path / "ledger" / "ft-s0.json").write_text(json.dumps(older))
    assert run_study(tiny_study, tmp_path / "study")["missing"] == []
    entry["config"]["lr"] *= 2
    (tmp_path / "ledger" / "ft-s0.json").write_text(json.dumps(entry))
    assert run_study(tiny_study, tmp_path / "study")["missing"] == ["ft seed 0: training run"]
    entry["config"]["lr"] /= 2
    entry["split"] = "0" * 16  # the same config on another split
    (tmp_path / "ledger" / "ft-s0.json").write_text(json.dumps(entry))
    assert run_study(tiny_study, tmp_path / "study")["missing"] == ["ft seed 0: training run"]


@pytest.mark.slow
def test_a_ledger_cell_and_another_training_of_its_config_are_never_mixed(tiny_study, tmp_path):
    """A run found for a cell may be another training of its config (other hardware, or code whose
    numerics changed since the cell was recorded): its test accuracy never joins the ledger's attacks.
    A complete ledger cell stands; an incomplete one is replaced by the run's own figures."""
    tiny_study.seeds, tiny_study.attacks, tiny_study.ledger = (0,), ("gradient",), str(tmp_path / "ledger")
    workdir, ledger = tmp_path / "study", tmp_path / "ledger" / "ft-s0.json"
    first = run_study(tiny_study, workdir)
    recorded = json.loads(ledger.read_text())
    results_file = workdir / "runs" / "ft-s0" / "results.json"
    results = json.loads(results_file.read_text())
    other_accuracy = 0.9 if results["test_accuracy"] != 0.9 else 0.8  # a model that learned, so it is tabulated
    other = {**results, "test_accuracy": other_accuracy, "test_loss": results["test_loss"] + 1}
    results_file.write_text(json.dumps(other))

    tiny_study.train = False
    again = run_study(tiny_study, workdir)
    assert again["methods"]["ft"] == first["methods"]["ft"]  # the recorded model, test accuracy included
    assert json.loads(ledger.read_text()) == recorded

    (report,) = (workdir / "runs" / "ft-s0" / "attacks").iterdir()
    partial = {**recorded, "attacks": {"an-attack-the-study-no-longer-runs": recorded["attacks"][report.name]}}
    ledger.write_text(json.dumps(partial))  # incomplete: the run's model replaces it, with its own report
    replaced = run_study(tiny_study, workdir)
    now = json.loads(ledger.read_text())
    assert now["test_accuracy"] == other["test_accuracy"] and list(now["attacks"]) == [report.name]
    assert replaced["methods"]["ft"]["test_accuracy"]["mean"] == pytest.approx(other["test_accuracy"])


def test_a_changed_split_trains_the_cell_again(tiny_study, tiny_config, tmp_path):
    """Neither a run nor a ledger cell of the same config on data that has since changed is reused:
    the study trains the cell again, in place."""
    from jaxrobust.train import saved_split, split_digest

    tiny_study.seeds, tiny_study.attacks, tiny_study.ledger = (0,), ("gradient",), str(tmp_path / "ledger")
    workdir, ledger = tmp_path / "study", tmp_path / "ledger" / "ft-s0.json"
    run_study(tiny_study, workdir)
    run = workdir / "runs" / "ft-s0"
    assert find_run(tiny_study, workdir, "ft", 0) == run and read_ledger(tiny_study, "ft", 0) is not None
    old = saved_split(run)
    assert json.loads(ledger.read_text())["split"] == old
    with open(tiny_config.task.removeprefix("csv:"), "a") as f:
        f.write("good good,pos\nbad boring bad,neg\n")
    new = split_digest(run_config(tiny_study, "ft", 0))
    assert new != old
    assert find_run(tiny_study, workdir, "ft", 0) is None and read_ledger(tiny_study, "ft", 0) is None
    table = run_study(tiny_study, workdir)
    assert table["missing"] == [] and saved_split(run) == new
    assert json.loads(ledger.read_text())["split"] == new
    assert json.loads((run / "results.json").read_text())["split_digest"] == new


def test_a_changed_config_trains_the_cell_again(tiny_study, tmp_path):
    """When the experiment's config changes (here its learning rate; a new default does the same), the
    study's own run folder of the old config is trained again in place, not refused."""
    tiny_study.seeds, tiny_study.attacks = (0,), ("gradient",)
    workdir = tmp_path / "study"
    run_study(tiny_study, workdir)
    run = workdir / "runs" / "ft-s0"
    experiment = tmp_path / "tiny_ft.py"
    experiment.write_text(experiment.read_text().replace("1e-2", "5e-3"))
    assert find_run(tiny_study, workdir, "ft", 0) is None
    table = run_study(tiny_study, workdir)
    assert table["missing"] == [] and json.loads((run / "config.json").read_text())["lr"] == 5e-3
    assert find_run(tiny_study, workdir, "ft", 0) == run


def _fake_cell(test_accuracy: float, majority_rate: float = 0.5, **attacks) -> dict:
    """A cell as ``collect`` builds it: ``attack=(n, clean_correct, robust)`` per finished attack."""
    out = {}
    for attack, (n, clean, robust) in attacks.items():
        assert robust <= clean
        summary = {"n": n, "clean_accuracy": len(clean) / n, "accuracy_under_attack": len(robust) / n,
                   "attack_success_rate": 1 - len(robust) / len(clean)}
        out[attack] = (summary, set(clean), set(robust))
    return {"test_accuracy": test_accuracy, "majority_rate": majority_rate, "attacks": out}


def test_intersection_accuracy_by_hand():
    """The examples every finished model classifies correctly, and each model's robust accuracy on
    them, worked out by hand for two methods x two seeds; rift seed 1 has no genetic attack."""
    c = study_config()
    c.methods, c.seeds, c.attacks, c.n_examples = ("ft", "rift"), (0, 1), ("gradient", "genetic"), 6
    c.genetic.n = 4
    cells = {
        "ft": {
            0: _fake_cell(0.8, gradient=(6, {0, 1, 2, 3, 4}, {0, 1}), genetic=(4, {0, 1, 2}, {0})),
            1: _fake_cell(0.7, gradient=(6, {0, 1, 2, 3, 5}, {1, 2, 3, 5}), genetic=(4, {0, 1, 2, 3}, set())),
        },
        "rift": {
            0: _fake_cell(0.9, gradient=(6, {0, 1, 2, 3, 4, 5}, {0, 1, 2, 4}), genetic=(4, {1, 2, 3}, {1, 2, 3})),
            1: _fake_cell(0.6, gradient=(6, {0, 2, 3, 4, 5}, {0, 2, 3, 5})),
        },
    }
    table = summarize_cells(c, cells)
    # gradient: {0,1,2,3,4} & {0,1,2,3,5} & {0,...,5} & {0,2,3,4,5} = {0, 2, 3}; robust there:
    # ft {0} and {2, 3}, rift {0, 2} and {0, 2, 3}. genetic, without rift seed 1: {0,1,2} & {0,1,2,3} &
    # {1,2,3} = {1, 2}; robust there: ft none and none, rift {1, 2}.
    assert table["intersection_n_examples"] == {"gradient": 3, "genetic": 2}
    expected = {
        ("ft", "gradient"): [1 / 3, 2 / 3], ("rift", "gradient"): [2 / 3, 1.0],
        ("ft", "genetic"): [0.0, 0.0], ("rift", "genetic"): [1.0],
    }
    for (method, attack), values in expected.items():
        got = table["methods"][method]["attacks"][attack]["intersection_accuracy_under_attack"]
        assert got["n_seeds"] == len(values)
        assert got["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        if len(values) > 1:
            assert got["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        else:
            assert got["std"] is None
    # The whole-sample accuracies are the reports' own, not the intersection's.
    assert table["methods"]["ft"]["attacks"]["gradient"]["accuracy_under_attack"]["mean"] == pytest.approx((2 / 6 + 4 / 6) / 2)
    md = table_markdown(table, [])
    assert "| method | gradient (n=3) | genetic (n=2) |" in md
    assert "| rift | 83.3 ± 23.6 (2) | 100.0 (1) |" in md and "| ft | 50.0 ± 23.6 (2) | 0.0 ± 0.0 (2) |" in md
    # Mean accuracies: clean ft 5/6, rift (6/6 + 5/6)/2; gradient ft 3/6, rift 4/6; genetic ft 1/8, rift 3/4.
    assert "RIFT minus FT, in points: clean +8.3, gradient +16.7, genetic +62.5." in md
    assert "not ahead" not in md
    c.caveat = "Few steps: see the full study."
    swapped = table_markdown(summarize_cells(c, {"ft": cells["rift"], "rift": cells["ft"]}), [])
    assert "RIFT minus FT, in points: clean -8.3, gradient -16.7, genetic -62.5." in swapped
    assert "RIFT is not ahead of FT under gradient, genetic here. Few steps: see the full study." in swapped


def test_a_run_that_never_learned_is_listed_apart_and_left_out():
    """A constant classifier cannot be flipped: its cell must not raise a method's robust accuracy, nor
    shrink the intersection to the examples of its one class."""
    c = study_config()
    c.methods, c.seeds, c.attacks, c.n_examples = ("ft", "freelb"), (0, 1), ("gradient",), 6
    cells = {
        "ft": {0: _fake_cell(0.8, 0.6, gradient=(6, {0, 1, 2, 3, 4}, {0, 1}))},
        "freelb": {
            0: _fake_cell(0.75, 0.6, gradient=(6, {0, 1, 2, 4, 5}, {0, 2})),
            # Always the commonest class (examples 0, 1, 2, 5 here): never flipped, never right on the others.
            1: _fake_cell(0.61, 0.6, gradient=(6, {0, 1, 2, 5}, {0, 1, 2, 5})),
        },
    }
    table = summarize_cells(c, cells)
    assert table["collapsed"] == [{"method": "freelb", "seed": 1, "test_accuracy": 0.61, "majority_rate": 0.6}]
    freelb = table["methods"]["freelb"]
    assert freelb["test_accuracy"] == {"mean": 0.75, "std": None, "n_seeds": 1}
    assert freelb["attacks"]["gradient"]["accuracy_under_attack"]["mean"] == pytest.approx(2 / 6)
    assert table["intersection_n_examples"] == {"gradient": 4}  # {0, 1, 2, 4}, not {0, 1, 2}
    md = table_markdown(table, [])
    assert "runs that never learned" in md and "freelb seed 1 (test 61.0, commonest class 60.0)" in md
    # Only a run clearly above the commonest class counts.
    cells["freelb"][1]["test_accuracy"] = 0.63
    assert summarize_cells(c, cells)["collapsed"] == []
