"""The tune mode: every setting scored on a dev sample, the choice rule, the ledger, and the config checks."""

from __future__ import annotations

import json
import shutil

import pytest

from jaxrobust.configs import load_config
from jaxrobust.errors import JaxRobustError
from jaxrobust.tuning import check_tuning_config, choose, run_tuning, tuning_config
from test_study import TINY_EXPERIMENT


def _row(clean: float, attacked: float) -> dict:
    return {"setting": "", "clean": clean, "attacked": attacked}


def test_choice_rule():
    rows = [_row(0.80, 0.50), _row(0.78, 0.60), _row(0.70, 0.90), _row(0.78, 0.60)]
    # The most robust of those within 3 points of FT's best (0.81): 1 and 3 tie, the earlier wins; 2 is too inaccurate.
    assert choose(rows, reference=0.81, margin=0.03) == 1
    assert choose(rows, reference=0.81, margin=0.11) == 2
    assert choose(rows, reference=0.78, margin=0.0) == 1  # exactly at the bound qualifies
    # None qualifies: the highest clean accuracy, whatever its robustness.
    assert choose(rows, reference=0.90, margin=0.03) == 0
    assert choose(rows[:2] + [None], reference=0.81, margin=0.03) is None  # not before every setting is scored


def test_the_grid_must_give_every_method_the_same_budget():
    c = load_config("tuning_minilm")
    check_tuning_config(c)
    assert all(len(c.grid[m]) == 4 for m in c.methods)
    c.grid.rift = c.grid.rift[:3]
    with pytest.raises(JaxRobustError, match="same number of settings"):
        check_tuning_config(c)
    c = load_config("tuning_minilm", ["--config.methods=adv,rift"])
    with pytest.raises(JaxRobustError, match="needs the ft method"):
        check_tuning_config(c)
    c = load_config("tuning_minilm")
    c.grid.adv = ("lr=1e-4 adv.strength=2",) + c.grid.adv[1:]
    with pytest.raises(JaxRobustError, match="no key 'adv.strength'"):
        check_tuning_config(c)


@pytest.mark.slow
def test_tuning_scores_every_setting_on_dev(tiny_config, tmp_path):
    (tmp_path / "tiny_ft.py").write_text(TINY_EXPERIMENT.format(task=tiny_config.task, model=tiny_config.model))
    c = tuning_config()
    # "rift" is a label here: the tiny FT experiment again, so that the table's RIFT-minus-FT line shows.
    c.experiments.update(ft=str(tmp_path / "tiny_ft.py"), rift=str(tmp_path / "tiny_ft.py"))
    c.methods, c.attacks = ("ft", "rift"), ("gradient", "textfooler")
    c.grid.update(ft=("lr=1e-2", "lr=1e-4"), rift=("lr=1e-2", "lr=3e-3"))  # rift-0 is ft-0's very config
    c.n_examples, c.budget, c.ledger, c.machine = 100, 0.5, str(tmp_path / "ledger"), "test"
    c.synonyms.update(source="wordnet", k=4, min_cos=0.0)
    workdir = tmp_path / "tune"
    table = run_tuning(c, workdir)
    assert table["missing"] == [] and sorted(p.name for p in (workdir / "runs").iterdir()) == ["ft-0", "ft-1", "rift-1"]
    for method, runs in (("ft", ["ft-0", "ft-1"]), ("rift", ["ft-0", "rift-1"])):
        for row, run in zip(table["methods"][method]["scores"], runs):
            gradient, textfooler = sorted((workdir / "runs" / run / "attacks").iterdir())  # the dev attacks, nothing on test
            assert gradient.name.endswith("-dev") and gradient.name == table["attack"] and textfooler.name.endswith("-dev")
            summary, other = (json.loads((r / "results.json").read_text()) for r in (gradient, textfooler))
            dev = json.loads((workdir / "runs" / run / "split.json").read_text())["dev"]
            assert summary["n"] == other["n"] == min(100, dev)
            assert (row["clean"], row["attacked"]) == (summary["clean_accuracy"], summary["accuracy_under_attack"])
            assert row["under"] == {"gradient": row["attacked"], "textfooler": other["accuracy_under_attack"]}
    ft = table["methods"]["ft"]["scores"]
    assert table["ft_reference"] == max(r["clean"] for r in ft)
    for method, entry in table["methods"].items():
        assert entry["chosen"] == choose(entry["scores"], table["ft_reference"], c.margin)
    md = (workdir / "tuning_table.md").read_text()
    chosen = table["methods"]["ft"]["settings"][table["methods"]["ft"]["chosen"]]
    assert f"| ft | **{chosen}** |" in md and "Missing settings: none." in md and "| textfooler dev |" in md
    rift, ft = (table["methods"][m]["scores"][table["methods"][m]["chosen"]] for m in ("rift", "ft"))
    gap = 100 * (rift["under"]["textfooler"] - ft["under"]["textfooler"])
    assert f"Chosen RIFT minus chosen FT on dev, in points: clean {100 * (rift['clean'] - ft['clean']):+.1f}" in md
    assert f"textfooler {gap:+.1f}." in md

    # The ledger alone gives the same table; nothing is trained again.
    shutil.rmtree(workdir)
    c.train = False
    assert run_tuning(c, workdir)["methods"] == table["methods"]
    assert not (workdir / "runs").exists()


@pytest.mark.assets
@pytest.mark.parametrize("tuning", ["tuning_quickstart", "tuning_minilm"])
def test_the_experiments_train_the_settings_their_tuning_chose(tuning, tmp_path):
    """The committed ledger of a tuning alone (nothing trained) gives a choice for every method, and
    each method's experiment config (the quickstart's ft and rift; robustness_minilm's *_minilm) is
    exactly that setting, so the tuning's seed-0 run of it is the study's, and back."""
    from jaxrobust.tuning import setting_config

    c = load_config(tuning, ["--config.train=False"])
    table = run_tuning(c, tmp_path / "tune")
    assert table["missing"] == []
    for method in c.methods:
        chosen = c.grid[method][table["methods"][method]["chosen"]]
        assert setting_config(c, method, chosen).to_json() == load_config(c.experiments[method], ["seed=0"]).to_json()
