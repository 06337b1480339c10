"""The robustness study: several training objectives × seeds, each attacked by several attacks.

``run_study(config, workdir)`` (``make experiment EXP=robustness_minilm``) works through *cells*:

* a training run per (method, seed): the method's experiment config with that seed, trained into
  ``WORKDIR/runs/METHOD-sSEED`` (resumed if interrupted), or a finished run of exactly that config
  found in ``runs/EXPERIMENT`` (what ``make experiment EXP=EXPERIMENT`` leaves) is reused;
* an attack per (method, seed, attack) of the run's best-on-dev model, on the same seeded sample of
  the test split for every model; its report goes to ``RUN/attacks/NAME``, and a report that is
  complete (it has a ``results.json``) is never recomputed.

With ``config.ledger`` set, every finished cell is also recorded there compactly (accuracies and the
per-example outcomes the table needs), one JSON per (method, seed): committed, it keeps the table
filling over sittings on machines that do not keep ``runs/``; a cell of the ledger is never recomputed.

Seeds are the outer loop, so an interrupted study has whole seeds of every method first. The table
aggregates whatever cells exist and lists the missing ones: ``--config.train=False`` tabulates (and
attacks) only the runs that exist, and ``--config.methods=ft,rift --config.seeds=0`` fills part of it.

Outputs in ``WORKDIR``: ``robustness_table.md``, ``robustness_table.json`` (accuracies as fractions,
mean ± sample std over seeds; also on the intersection of the examples every model classifies
correctly), ``robustness.png`` (bars with std error bars), ``frontier.png`` (every model as a point, clean
accuracy against accuracy under attack, one panel per attack; :mod:`jaxrobust.frontier`) and ``summary.md``
(RIFT against FT, and which methods are on the frontier).

A run that never learned (test accuracy no better than always answering the test split's commonest
class) cannot be flipped, so it would read as robust: such cells are listed apart and kept out of the
means and the intersection.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

import ml_collections
import numpy as np

from jaxrobust import frontier
from jaxrobust.attacks.report import read_records
from jaxrobust.attacks.run import AttackSettings, load_target, report_dir, run_attack
from jaxrobust.attacks.synonyms import load_synonyms
from jaxrobust.configs import load_config
from jaxrobust.io import write_json_atomic, write_text_atomic
from jaxrobust.outputs import clear_run_dir
from jaxrobust.validation import check_study_config


def study_config() -> ml_collections.ConfigDict:
    """Every key a study reads; ``experiments/robustness_*.py`` start from this."""
    c = ml_collections.ConfigDict()
    c.study = "robustness"  # marks a study config (the ``experiment`` command runs it with run_study)
    c.experiments = ml_collections.ConfigDict()  # method -> experiment config name
    c.methods = ()  # the methods tabulated, in table order
    c.seeds = (0, 1, 2)
    c.attacks = ("gradient", "textfooler", "pwws", "genetic")
    c.n_examples = 500  # seeded test sample attacked by every attack but the genetic one
    c.attack_seed = 0
    c.budget = 0.2  # share of the words an attack may change
    # The perturbation set every attack searches: as in the RIFT and ASCC papers, the substitution
    # set the robust objectives train with (config.synonyms of the runs), so that the attacks differ
    # in their search only.
    c.synonyms = ml_collections.ConfigDict(dict(source="wordnet-cf", k=8, min_cos=0.5))
    # The genetic attack's sample and search size (the paper's population 60 x 20 generations costs
    # about 1,200 forward passes per example), and its language-model filter (a causal LM, e.g.
    # bundle:smollm2-135m, as the RIFT paper's evaluation has it; "": off, the CPU-sized default:
    # it costs an LM pass per candidate of every word).
    c.genetic = ml_collections.ConfigDict(dict(n=500, population=60, generations=20, lm_filter=""))
    c.train = True  # False: use only runs that exist
    # Where finished cells are also recorded, compactly (accuracies and the per-example outcomes the
    # table needs), so a table filled over several sittings survives the loss of runs/; "" = nowhere.
    c.ledger = ""
    c.machine = ""  # what the table says it was measured on
    c.title = "Robustness study"  # the table's heading
    c.row_name = "method"  # what the table's rows are (``methods`` names them): training methods, or models
    # Said under the table when RIFT is not ahead of FT under every attack (why this study cannot
    # show it, and where to look instead); "" = nothing.
    c.caveat = ""
    return c


def is_study(config) -> bool:
    return "study" in config


@functools.lru_cache(maxsize=4)
def _synonyms(source: str, k: int, min_cos: float):
    return load_synonyms(source, k=k, min_cos=min_cos)


def attack_settings(config, attack: str) -> AttackSettings:
    g, s = config.genetic, config.synonyms
    n, extra = ((g.n, dict(population=g.population, generations=g.generations, lm_filter=g.lm_filter)) if attack == "genetic"
                else (config.n_examples, {}))
    return AttackSettings(attack, s.source, n, config.budget, config.attack_seed, k=s.k, min_cos=s.min_cos, **extra)


def run_config(config, method: str, seed: int):
    return load_config(config.experiments[method], [f"seed={seed}"])


def find_run(config, workdir: Path, method: str, seed: int) -> Path | None:
    """A finished run of (method, seed): in the study's workdir, or reused from the folder beside it
    named after the method's experiment (``make experiment EXP=X`` writes ``runs/X`` beside ``runs/STUDY``),
    or from another study's runs beside it (a tuning setting that became the experiment's config)."""
    places = [workdir / "runs" / f"{method}-s{seed}", workdir.parent / config.experiments[method]]
    return finished_run(run_config(config, method, seed), places + sorted(workdir.parent.glob("*/runs/*")))


def run_study(config, workdir: str | os.PathLike) -> dict:
    """Train and attack every missing cell (``config.train``), then write and return the table."""
    workdir = Path(workdir).absolute()
    check_study_config(config)
    workdir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(workdir / "study.json", json.loads(config.to_json()))
    for seed in config.seeds:
        for method in config.methods:
            fill_cell(
                study_cell(config, method, seed), [attack_settings(config, a) for a in config.attacks],
                own_run=workdir / "runs" / f"{method}-s{seed}", found=find_run(config, workdir, method, seed), train=config.train,
            )
    return write_table(config, workdir)


# --- cells: a training run and its attack reports, also kept in a ledger ------------------------


@dataclasses.dataclass
class Cell:
    """What a study fills: a training run of exactly ``config`` and its attack reports; ``ledger``: the
    JSON file where the finished cell is also recorded compactly (None: nowhere)."""

    label: str  # for messages, e.g. "rift seed 0"
    config: ml_collections.ConfigDict
    ledger: Path | None
    # What the ledger keys the cell by, when the run config holds something of this machine (a path
    # to another run it starts from): the config with that replaced by a portable name.
    identity: dict | None = None

    @property
    def key(self) -> dict:
        return self.identity if self.identity is not None else json.loads(self.config.to_json())


def finished_run(wanted, places) -> Path | None:
    """The first of ``places`` that holds a finished run of exactly ``wanted`` on its current split,
    with its model (not :func:`release_models`'d)."""
    from jaxrobust.train import holds_config, saved_split, split_digest

    digest = None
    for candidate in places:
        if (candidate / "results.json").is_file() and (candidate / "best").is_dir() and holds_config(candidate, wanted):
            digest = digest or split_digest(wanted)
            if saved_split(candidate) == digest:  # not a run on a split that has since changed
                return candidate
    return None


def fill_cell(cell: Cell, settings: list[AttackSettings], own_run: Path, found: Path | None, train: bool) -> None:
    """Train ``cell`` into ``own_run`` (unless a finished run was ``found``, or ``train`` is off) and run
    every attack of ``settings`` on it that neither the run nor the ledger has; record what finished."""
    if has_every_attack(read_entry(cell), settings):
        return  # the whole cell is in the ledger
    run = found
    if run is None and train:
        run = train_into(cell, own_run)
    if run is None:
        return
    # The test accuracy, before the first attack (a recorded cell of another model is replaced).
    recorded = record(cell, run, settings) or {"attacks": {}}
    target = None
    for s in settings:
        out = report_dir(run, s)
        if s.name in recorded["attacks"] or (out / "results.json").is_file():
            continue
        print(f"study: {s.attack} attack on {cell.label}" + (f" ({s.split} split)" if s.split != "test" else ""))
        target = target or load_target(str(run))
        run_attack(target, s, None if s.mlm else _synonyms(s.synonyms, s.k, s.min_cos), out)  # BERT-Attack: its masked LM's
        record(cell, run, settings)


def train_into(cell: Cell, run: Path) -> Path:
    """Train ``cell`` into its own run folder ``run``: replaced when it holds another config (the
    experiment or its defaults changed) or an old split; a run of this config that was interrupted is
    resumed."""
    from jaxrobust.train import holds_config, is_stale, train_and_evaluate

    print(f"study: training {cell.label} into {run}")
    released = (run / "results.json").is_file() and not (run / "best").is_dir()  # its reports are of a removed model
    replace = (run / "config.json").is_file() and (released or is_stale(run, cell.config) or not holds_config(run, cell.config))
    train_and_evaluate(cell.config, run, overwrite=replace)
    # A finished run is never resumed: its resume checkpoints (the optimizer state with the model,
    # several times the model's size) go; best/ keeps the selected model.
    if (run / "results.json").is_file():
        clear_run_dir(run, ("checkpoints",))
    return run


def release_models(run: Path) -> None:
    """Remove the models of the finished study run ``run`` (``best/``, ``checkpoints/``), keeping its
    config, results and attack reports: for studies whose every figure is already in the ledger and
    whose models would not fit the disk (a transfer study of base-sized models trains 60 per model)."""
    if (run / "results.json").is_file():
        clear_run_dir(run, ("best", "checkpoints"))


def read_entry(cell: Cell) -> dict | None:
    """The recorded cell: ``{"config", "split", "test_accuracy", "attacks": {report name: {"summary",
    "clean_correct", "robust"}}}``, or None if none was recorded for this run config and split."""
    if cell.ledger is None or not cell.ledger.is_file():
        return None
    from jaxrobust.train import split_digest, with_defaults

    entry = json.loads(cell.ledger.read_text())
    # A cell of another run config, or of the same config on a split that has since changed, is stale
    # (a cell recorded before a setting existed ran with its default; so did a transfer cell's source stage).
    saved = with_defaults(entry["config"])
    if "source_stage" in saved:
        saved["source_stage"] = with_defaults(saved["source_stage"])
    fresh = saved == cell.key and entry.get("split") == split_digest(cell.config)
    return entry if fresh else None


def has_every_attack(entry: dict | None, settings: list[AttackSettings]) -> bool:
    """Whether the recorded cell ``entry`` (None: none recorded) holds the outcome of every attack of ``settings``."""
    return entry is not None and all(s.name in entry["attacks"] for s in settings)


def _same_model(entry: dict, results: dict) -> bool:
    """Whether a recorded cell and a run's ``results.json`` describe one trained model: a run of the
    same config trained again (on other hardware, or by code whose numerics changed since) ends
    elsewhere, and its test figures say so."""
    return all(entry.get(k) in (None, results.get(k)) for k in ("test_accuracy", "test_loss"))


def cell_entry(cell: Cell, run: Path | None, settings: list[AttackSettings]) -> dict | None:
    """The cell in the ledger's form: the recorded entry updated from the finished run directory ``run``
    (whose test accuracy and reports of ``settings`` win), or None if there is neither. The figures
    of two models are never mixed: when ``run`` is another training of the recorded cell's config, a
    complete recorded cell stands and the run is not read, and an incomplete one is replaced by the
    run's."""
    entry = read_entry(cell)
    if run is None:
        return entry
    results = json.loads((run / "results.json").read_text())
    if entry is not None and not _same_model(entry, results):
        if has_every_attack(entry, settings):
            return entry
        entry = None
    entry = entry or {"config": cell.key, "split": results["split_digest"], "attacks": {}}
    entry["test_accuracy"] = results["test_accuracy"]
    entry["test_loss"] = results.get("test_loss")
    # Absent from runs trained before they were recorded.
    for key in ("examples_per_second", "parameters"):
        if results.get(key) is not None:
            entry[key] = results[key]
    for s in settings:  # only the study's own attacks: the run may hold others, run by hand
        report = report_dir(run, s)
        if (report / "results.json").is_file():
            entry["attacks"][report.name] = _outcomes(report)
    return entry


def record(cell: Cell, run: Path, settings: list[AttackSettings]) -> dict | None:
    """Add the finished run ``run`` of ``cell`` and its finished reports of ``settings`` to the ledger;
    returns the entry written (None: the cell has no ledger)."""
    if cell.ledger is None:
        return None
    entry = cell_entry(cell, run, settings)
    cell.ledger.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cell.ledger, entry)
    return entry


def _ledger_file(config, method: str, seed: int) -> Path | None:
    return Path(config.ledger) / f"{method}-s{seed}.json" if config.ledger else None


def study_cell(config, method: str, seed: int) -> Cell:
    return Cell(f"{method} seed {seed}", run_config(config, method, seed), _ledger_file(config, method, seed))


def read_ledger(config, method: str, seed: int) -> dict | None:
    """The recorded cell of (method, seed) of the robustness study (:func:`read_entry`)."""
    return read_entry(study_cell(config, method, seed))


def record_cell(config, method: str, seed: int, run: Path) -> None:
    """Add the finished run ``run`` of (method, seed) and its finished attack reports to the ledger."""
    record(study_cell(config, method, seed), run, [attack_settings(config, a) for a in config.attacks])


# --- the table ----------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict:
    """Mean and sample std over seeds; the std of a single seed is undefined (None)."""
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "n_seeds": len(values),
    }


def _records(report: Path) -> dict[int, dict]:
    return {r["index"]: r for r in read_records(report)}


def _outcomes(report: Path) -> dict:
    """An attack report as the ledger keeps it: its summary, the sampled examples classified correctly
    (``clean_correct``), those not flipped (``robust``) and its :func:`classification_metrics`."""
    records = _records(report)
    return {
        "summary": json.loads((report / "results.json").read_text()),
        "clean_correct": sorted(i for i, r in records.items() if r["reason"] != "misclassified"),
        "robust": sorted(i for i, r in records.items() if _robust(r)),
        "metrics": classification_metrics(list(records.values())),
    }


# A run whose test accuracy is within this of the majority-class rate has not learned the task.
COLLAPSE_MARGIN = 0.02


def majority_rate(config, method: str, seed: int) -> float:
    """The share of the commonest label in the test split of (method, seed)'s run config: the accuracy
    of a classifier that always answers it."""
    from jaxrobust.train import task_of

    labels = [e.label for e in task_of(run_config(config, method, seed)).load().test]
    return max(labels.count(c) for c in set(labels)) / len(labels)


def is_collapsed(cell: dict) -> bool:
    return cell["test_accuracy"] <= cell["majority_rate"] + COLLAPSE_MARGIN


def collect(config, workdir: Path) -> tuple[dict, list[str]]:
    """``cells[method][seed] = {"test_accuracy", "majority_rate", "attacks": {attack: (summary,
    clean_correct, robust)}}`` of every finished cell, from the run directories or else the ledger, and
    the names of the missing ones."""
    cells, missing = {}, []
    for method in config.methods:
        for seed in config.seeds:
            entry = cell_entry(study_cell(config, method, seed), find_run(config, workdir, method, seed),
                               [attack_settings(config, a) for a in config.attacks])
            if entry is None:
                missing.append(f"{method} seed {seed}: training run")
                continue
            cell = {"test_accuracy": entry["test_accuracy"], "majority_rate": majority_rate(config, method, seed), "attacks": {},
                    "examples_per_second": entry.get("examples_per_second"), "parameters": entry.get("parameters")}
            for attack in config.attacks:
                recorded = entry["attacks"].get(attack_settings(config, attack).name)
                if recorded:
                    cell["attacks"][attack] = (recorded["summary"], set(recorded["clean_correct"]), set(recorded["robust"]))
                else:
                    missing.append(f"{method} seed {seed}: {attack} attack")
            cells.setdefault(method, {})[seed] = cell
    return cells, missing


def classification_metrics(records: list[dict]) -> dict:
    """Precision, recall and F1 of an attacked sample before and after the attack (the positive class,
    1, for two classes; the macro mean over classes otherwise), and the mean confidence |p_1 − 0.5| on
    the clean texts. After the attack a success predicts what its perturbed text is classified as; every
    other example keeps its clean prediction."""
    labels = np.array([r["label"] for r in records])
    before = np.array([int(np.argmax(r["original_probs"])) for r in records])
    after = np.array([int(np.argmax(r["perturbed_probs"])) if r["success"] else b for r, b in zip(records, before)])
    classes = len(records[0]["original_probs"])
    out = {"confidence": float(np.mean([abs(r["original_probs"][min(1, classes - 1)] - 0.5) for r in records]))}
    for name, pred in (("before", before), ("after", after)):
        ps, rs, fs = [], [], []
        for c in ([1] if classes == 2 else range(classes)):
            tp = np.sum((pred == c) & (labels == c))
            p, r = tp / max(np.sum(pred == c), 1), tp / max(np.sum(labels == c), 1)
            ps.append(p), rs.append(r), fs.append(2 * p * r / (p + r) if p + r else 0.0)
        out.update({f"precision_{name}": float(np.mean(ps)), f"recall_{name}": float(np.mean(rs)), f"f1_{name}": float(np.mean(fs))})
    return out


def _robust(record: dict) -> bool:
    """Correct on the clean text and not flipped by the attack."""
    return record["reason"] != "misclassified" and not record["success"]


def summarize_cells(config, cells: dict) -> dict:
    """The ``robustness_table.json`` content of ``cells``; collapsed cells (``is_collapsed``) are listed
    under ``"collapsed"`` and left out of everything else."""
    collapsed = [
        {"method": method, "seed": seed, "test_accuracy": cell["test_accuracy"], "majority_rate": cell["majority_rate"]}
        for method, seeds in cells.items() for seed, cell in seeds.items() if is_collapsed(cell)
    ]
    cells = {m: {s: c for s, c in seeds.items() if not is_collapsed(c)} for m, seeds in cells.items()}
    # Intersection, per attack: the sampled examples every finished model classifies correctly.
    common = {}
    for attack in config.attacks:
        sets = [c["attacks"][attack][1] for seeds in cells.values() for c in seeds.values() if attack in c["attacks"]]
        common[attack] = sorted(set.intersection(*sets)) if sets else []
    methods = {}
    for method in config.methods:  # a method without a finished run gets an empty row
        seeds = cells.get(method, {})
        if not seeds:
            methods[method] = {"attacks": {}}
            continue
        clean = [a for a in (_clean_accuracy(c, config.n_examples) for c in seeds.values()) if a is not None]
        entry = {"test_accuracy": _stats([c["test_accuracy"] for c in seeds.values()]), "attacks": {}}
        speeds = [c["examples_per_second"] for c in seeds.values() if c.get("examples_per_second") is not None]
        if speeds:  # training examples/s after compilation, as each run measured it
            entry["train_examples_per_second"] = _stats(speeds)
        sizes = {c["parameters"] for c in seeds.values() if c.get("parameters") is not None}
        if sizes:
            entry["parameters"] = max(sizes)
        if clean:
            entry["clean_accuracy"] = _stats(clean)
        for attack in config.attacks:
            done = [c["attacks"][attack] for c in seeds.values() if attack in c["attacks"]]
            if not done:
                continue
            # The success rate is undefined (None) for a model that classifies no sampled example correctly.
            rates = [s["attack_success_rate"] for s, *_ in done if s["attack_success_rate"] is not None]
            # Validity: how close the successful examples stay to their originals (None without a success).
            sims = [s["validity"]["similarity_mean"] for s, *_ in done if s.get("validity", {}).get("similarity_mean") is not None]
            entry["attacks"][attack] = {
                "accuracy_under_attack": _stats([s["accuracy_under_attack"] for s, *_ in done]),
                "attack_success_rate": _stats(rates) if rates else None,
                "intersection_accuracy_under_attack": _stats(
                    [np.mean([i in robust for i in common[attack]]) for _, _, robust in done]
                ) if common[attack] else None,
                "n_examples": done[0][0]["n"],
                "similarity_mean": _stats(sims) if sims else None,
            }
        methods[method] = entry
    return {
        "machine": config.machine,
        "title": config.title,
        "row_name": config.row_name,
        "n_examples": config.n_examples,
        "settings": {
            "attacks": list(config.attacks), "budget": config.budget,
            "synonyms": config.synonyms.to_dict(),
            "attack_seed": config.attack_seed, "seeds": list(config.seeds), "genetic": config.genetic.to_dict(),
            "constraints": {a: attack_settings(config, a).rules.tag for a in config.attacks},
            "caveat": config.caveat,
        },
        "intersection_n_examples": {a: len(ids) for a, ids in common.items()},
        "methods": methods,
        "collapsed": collapsed,
        "frontier": frontier.frontier_table(cells, list(config.attacks)),
    }


def _clean_accuracy(cell: dict, n: int) -> float | None:
    """Accuracy on the study's sample of ``n`` test examples, from any attack report on all of them
    (an attack on fewer, such as the genetic one, would mix another sample into the mean)."""
    return next((s["clean_accuracy"] for s, *_ in cell["attacks"].values() if s["n"] == n), None)


def _fmt(stats: dict | None) -> str:
    if not stats:
        return "–"
    if stats["std"] is None:
        return f"{100 * stats['mean']:.1f} (1)"
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f} ({stats['n_seeds']})"


def table_markdown(table: dict, missing: list[str]) -> str:
    attacks = table["settings"]["attacks"]
    s, g = table["settings"], table["settings"]["genetic"]
    syn = s["synonyms"]
    row = table["row_name"]
    lines = [
        f"# {table['title']}",
        "",
        f"Machine: {table['machine'] or 'not stated'}. Accuracy in %, mean ± std over seeds (number of seeds).",
        f"Attacks on the same seeded sample of {table['n_examples']} test examples (seed {s['attack_seed']}), "
        f"budget {s['budget']:g} of the words; every attack searches the same candidates ({syn['source']}, "
        f"top {syn['k']} with cosine >= {syn['min_cos']:g})"
        + (f"; the genetic attack on {g['n']} examples with population {g['population']} and {g['generations']} generations."
           if "genetic" in attacks else "."),
        "",
        "Constraints of each attack's recipe: " + ", ".join(f"{a} {s['constraints'][a]}" for a in attacks) + ".",
        "",
        "Params: the classifier's parameters; train ex/s: training examples per second after compilation, as "
        "the run measured it (mean over seeds); test: accuracy on the whole test split; clean: on the attacked "
        "sample; sim: mean sentence-encoder similarity of the successful adversarial examples to their "
        "originals (all-MiniLM-L6-v2, mean over seeds).",
        "",
        f"| {row} | params | train ex/s | test | clean | " + " | ".join(f"{a} | sim" for a in attacks) + " |",
        "|---|---|---|---|---|" + "---|---|" * len(attacks),
    ]
    for method, entry in table["methods"].items():
        speed = entry.get("train_examples_per_second")
        cells = [f"{entry['parameters'] / 1e6:.1f}M" if entry.get("parameters") else "–", f"{speed['mean']:.1f}" if speed else "–"]
        cells += [_fmt(entry.get(k)) for k in ("test_accuracy", "clean_accuracy")]
        for a in attacks:
            got = entry["attacks"].get(a, {})
            sim = got.get("similarity_mean")
            cells += [_fmt(got.get("accuracy_under_attack")), f"{sim['mean']:.3f}" if sim else "–"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += rift_versus_ft(table)
    lines += [
        "",
        "On the intersection of the examples every model classifies correctly (clean accuracy 100 % there):",
        "",
        f"| {row} | " + " | ".join(f"{a} (n={table['intersection_n_examples'][a]})" for a in attacks) + " |",
        "|---|" + "---|" * len(attacks),
    ]
    for method, entry in table["methods"].items():
        cells = [_fmt(entry["attacks"].get(a, {}).get("intersection_accuracy_under_attack")) for a in attacks]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if table["collapsed"]:
        lines += ["", "Left out of both tables, runs that never learned (test accuracy within "
                  f"{100 * COLLAPSE_MARGIN:.0f} points of always answering the commonest class, which no attack can flip): " + "; ".join(
            f"{c['method']} seed {c['seed']} (test {100 * c['test_accuracy']:.1f}, commonest class "
            f"{100 * c['majority_rate']:.1f})" for c in table["collapsed"]) + "."]
    lines += ["", "Missing cells: " + ("; ".join(missing) if missing else "none") + "."]
    return "\n".join(lines) + "\n"


def rift_versus_ft(table: dict) -> list[str]:
    """Lines stating RIFT's mean accuracy minus FT's, clean and under each attack, and the study's
    caveat when RIFT is not ahead under every attack; none without both methods."""
    if not {"rift", "ft"} <= table["methods"].keys():
        return []
    rift, ft = table["methods"]["rift"], table["methods"]["ft"]
    gaps = {}
    for name, key in [("clean", None)] + [(a, a) for a in table["settings"]["attacks"]]:
        r, f = (m.get("clean_accuracy") if key is None else m["attacks"].get(key, {}).get("accuracy_under_attack") for m in (rift, ft))
        if r and f:
            gaps[name] = 100 * (r["mean"] - f["mean"])
    if len(gaps) < 2:
        return []
    lines = ["", "RIFT minus FT, in points: " + ", ".join(f"{name} {gap:+.1f}" for name, gap in gaps.items()) + "."]
    behind = [name for name, gap in gaps.items() if name != "clean" and gap <= 0]
    if behind:
        lines.append(f"RIFT is not ahead of FT under {', '.join(behind)} here." + (f" {table['settings']['caveat']}" if table["settings"].get("caveat") else ""))
    return lines


def plot(table: dict, path: Path) -> None:
    """Grouped bars: clean accuracy and accuracy under each attack, one bar per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["clean"] + table["settings"]["attacks"]
    methods = list(table["methods"])
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(1.6 * len(columns) + 2, 3.6))
    for j, method in enumerate(methods):
        entry = table["methods"][method]
        stats = [entry.get("clean_accuracy")] + [entry["attacks"].get(a, {}).get("accuracy_under_attack") for a in columns[1:]]
        means = [100 * s["mean"] if s else np.nan for s in stats]
        stds = [100 * s["std"] if s and s["std"] is not None else 0.0 for s in stats]
        ax.bar(np.arange(len(columns)) + (j - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=method)
    ax.set_xticks(np.arange(len(columns)), columns)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(ncol=len(methods), fontsize=8, loc="upper right")
    ax.set_title(f"{table['machine']}" if table["machine"] else "robustness", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def write_table(config, workdir: Path) -> dict:
    """Tabulate the finished cells of ``workdir`` into the three output files; returns the table."""
    check_study_config(config)
    cells, missing = collect(config, workdir)
    table = summarize_cells(config, cells)
    table["missing"] = missing
    write_json_atomic(workdir / "robustness_table.json", table)
    write_text_atomic(workdir / "robustness_table.md", table_markdown(table, missing))
    write_text_atomic(workdir / "summary.md", summary_markdown(table))
    plot(table, workdir / "robustness.png")
    frontier.plot(table["frontier"], workdir / "frontier.png", title=table["machine"] or "")
    return table


def summary_markdown(table: dict) -> str:
    """What the numbers say: RIFT against FT, and which methods are on the clean-vs-robust frontier."""
    lines = [f"# {table['title']}: summary", "", f"Machine: {table['machine'] or 'not stated'}. Every model is a "
             f"({table['row_name']}, seed) cell; the frontier is the set of models that no other model beats both clean and "
             "under attack (frontier.png)."]
    lines += rift_versus_ft(table)
    lines += [""] + frontier.summary_lines(table["frontier"])
    if table.get("missing"):
        lines += ["", f"Not final: {len(table['missing'])} cells missing ({'; '.join(table['missing'][:4])}"
                  f"{' ...' if len(table['missing']) > 4 else ''})."]
    return "\n".join(lines) + "\n"
