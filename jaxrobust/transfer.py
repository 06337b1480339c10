"""The transfer-learning robustness study (Turbal et al. 2024; ``../shared/METHODS.md`` section 2).

Does intermediate fine-tuning on a source task, followed by low-data fine-tuning on the target task,
make the target model more vulnerable to word-substitution attacks? ``run_transfer(config,
workdir)`` (``make experiment EXP=transfer_study``) works, for every model and seed, through:

* **baseline** (model, target, seed): the pretrained model fine-tuned on the target's small train
  split (``target_train`` examples, ``target_epochs``), selected on a small dev split;
* **source stage** (model, source, seed): the pretrained model fine-tuned on the source's train split
  (at most ``source_train`` examples, ``source_epochs``), trained once and reused for every target;
* **transfer** (model, source, target, seed): the source stage's selected model fine-tuned further
  exactly as the baseline is;

for every ordered pair of distinct tasks (or ``config.pairs``). Both arms of a target are attacked on
the same seeded sample of its test split (``n_examples``) by every attack of ``config.attacks``, each
with the query budget; the source stage and the transfer model are also evaluated on the source's
test split (forgetting). Model selection is on dev loss (``select_on``), as the paper's Trainer.

Tasks must mean the same by each class index: a task's labels are renamed into the shared label set
by ``config.label_map`` (``"rotten=negative,fresh=positive"``), and a pair whose label sets still
differ is refused, naming both.

Every finished cell is recorded in ``config.ledger`` (one JSON per training run: accuracies, each
attack's summary and metrics, the source accuracy) and never recomputed, so the study fills over
several sittings; with ``keep_models`` off, a run's models are removed once its cell is recorded
whole. Outputs in ``WORKDIR``: ``transfer.csv`` (one row per model, source, target, seed, arm and
attack; a baseline row has source ``none``), ``heatmap_<model>_<attack>.png`` (accuracy under
attack, transfer minus baseline, over source x target), ``heatmap_<model>_<attack>_success.png``
(attack success rate), ``heatmap_<model>_clean.png``, ``forgetting.md``, ``summary.md``.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

import ml_collections
import numpy as np

from jaxrobust.attacks.run import AttackSettings
from jaxrobust.errors import HubUnreachable, JaxRobustError
from jaxrobust.io import write_json_atomic, write_text_atomic
from jaxrobust.study import (Cell, cell_entry, fill_cell, finished_run, has_every_attack, read_entry, record, release_models,
                             train_into)

ARMS = ("baseline", "transfer")


def transfer_config() -> ml_collections.ConfigDict:
    """Every key the transfer study reads; ``experiments/transfer_*.py`` start from this."""
    c = ml_collections.ConfigDict()
    c.study = "transfer"  # a study config that the ``experiment`` command runs with run_transfer
    c.tasks = ()  # task names (or csv:/jsonl: files); every ordered pair of distinct tasks is a cell
    c.pairs = ()  # "SOURCE>TARGET" strings to run instead of every pair
    # Per task, its labels renamed into the shared label set, in class order: "rotten=negative,fresh=positive".
    c.label_map = ml_collections.ConfigDict()
    c.models = ml_collections.ConfigDict()  # short name -> model reference (bundle:ID, folder or hub id)
    c.model_names = ()  # the models run, in table order
    c.seeds = (0, 1, 2)
    c.source_train = 2000  # source stage: at most this many training examples (a fixed sample)
    c.source_epochs = 2
    c.target_train = 200  # the target's small train split (a fixed sample)
    c.target_epochs = 4
    c.eval_subset = 100  # dev examples each stage selects on (and the run's own test figure)
    # The training settings of every stage (the rest: default_config's).
    c.training = ml_collections.ConfigDict(dict(lr=5e-5, batch_size=16, eval_batch_size=64, weight_decay=0.02, max_length=64,
                                                buckets=(32, 64), select_on="loss", warmup_ratio=0.1))
    c.attacks = ("gradient", "textfooler")  # A2T-like gradient, TextFooler, bertattack (needs mlm)
    c.n_examples = 300  # seeded sample of each target's test split, the same for both arms
    c.attack_seed = 0
    c.budget = 0.2  # share of the words an attack may change
    c.query_budget = 80  # model evaluations per attacked example (0: none)
    c.mlm = ""  # BERT-Attack's masked LM
    c.train = True  # False: tabulate only what exists
    # False: a run's models are removed once the ledger holds its cell whole (a source stage's once every
    # transfer from it is), keeping its results and attack reports; the ledger then needs no runs/.
    c.keep_models = True
    c.ledger = ""  # where finished cells are also recorded ("" = nowhere)
    c.machine = ""
    c.offline_alternative = ""  # an experiment to name when the hub cannot be reached
    return c


def is_transfer(config) -> bool:
    return config.get("study") == "transfer"


# --- the cells ------------------------------------------------------------------------------------


def slug(task: str) -> str:
    """A task's name in file names (a csv:/jsonl: task: its file's stem)."""
    kind, sep, path = task.partition(":")
    return Path(path).stem if sep and kind in ("csv", "jsonl") else task


def pairs(config) -> list[tuple[str, str]]:
    if config.pairs:
        return [tuple(p.split(">", 1)) for p in config.pairs]
    return [(s, t) for s in config.tasks for t in config.tasks if s != t]


def shared_labels(config, task: str) -> tuple[str, ...]:
    """``task``'s labels, in class order, renamed by its ``label_map`` entry."""
    from jaxrobust.data.tasks import get_task

    names = get_task(task).label_names
    rename = dict(item.split("=", 1) for item in config.label_map.get(slug(task), "").split(",") if item)
    return tuple(rename.get(n, n) for n in names)


def check_transfer_config(config) -> None:
    from jaxrobust.data.tasks import get_task

    if len(config.tasks) < 2 and not config.pairs:
        raise JaxRobustError("--config.tasks needs at least two tasks (a source and a target)")
    for s, t in pairs(config):
        if s not in config.tasks or t not in config.tasks or s == t:
            raise JaxRobustError(f"--config.pairs: {s}>{t} is not a pair of two of the study's tasks ({', '.join(config.tasks)})")
    for task in config.tasks:
        if ":" not in task:
            get_task(task)  # an unknown task: named with the known ones
    for s, t in pairs(config):
        a, b = shared_labels(config, s), shared_labels(config, t)
        if a != b:
            raise JaxRobustError(f"tasks {s} and {t} have different labels ({', '.join(a)} vs {', '.join(b)}); map them onto the "
                                 f"same labels with --config.label_map (e.g. {slug(t)}='{','.join(f'{x}={y}' for x, y in zip(b, a))}')")
    unknown = [m for m in config.model_names if m not in config.models]
    if unknown or not config.model_names:
        raise JaxRobustError(f"unknown model {', '.join(map(repr, unknown)) or '(none given)'} in --config.model_names; known: {', '.join(config.models)}")
    if config.query_budget < 0:
        raise JaxRobustError(f"--config.query_budget must be at least 1, or 0 for none; got {config.query_budget}")
    for attack in config.attacks:
        attack_settings(config, attack)  # an unknown attack, bertattack without mlm: its own message


def attack_settings(config, attack: str) -> AttackSettings:
    """Each attack with its recipe's candidates and constraints, the study's budget and query budget."""
    return AttackSettings(attack, n=config.n_examples, budget=config.budget, seed=config.attack_seed,
                          query_budget=config.query_budget or None, mlm=config.mlm if attack == "bertattack" else "")


def _stage(config, model: str, task: str, seed: int, train: int, epochs: int, start: str | None = None):
    """The run config of one training stage (``start``: a run to continue from instead of ``model``)."""
    from jaxrobust.train import default_config

    c = default_config()
    c.update(config.training.to_dict())
    c.buckets = tuple(c.buckets)
    c.task, c.model, c.seed = task, start or config.models[model], seed
    c.train_subset, c.eval_subset, c.epochs = train, config.eval_subset, epochs
    c.offline_alternative = config.offline_alternative
    return c


def _ledger(config, name: str) -> Path | None:
    return Path(config.ledger) / f"{name}.json" if config.ledger else None


def source_cell(config, model: str, source: str, seed: int) -> Cell:
    name = f"{model}-source-{slug(source)}-s{seed}"
    return Cell(name, _stage(config, model, source, seed, config.source_train, config.source_epochs), _ledger(config, name))


def baseline_cell(config, model: str, target: str, seed: int) -> Cell:
    name = f"{model}-baseline-{slug(target)}-s{seed}"
    return Cell(name, _stage(config, model, target, seed, config.target_train, config.target_epochs), _ledger(config, name))


def transfer_cell(config, model: str, source: str, target: str, seed: int, source_run: Path | None) -> Cell:
    """The transfer stage; its ledger key names the source stage instead of the machine's path to it."""
    name = f"{model}-transfer-{slug(source)}-{slug(target)}-s{seed}"
    portable = f"source stage {model}-source-{slug(source)}-s{seed}"
    run_config = _stage(config, model, target, seed, config.target_train, config.target_epochs, start=str(source_run or portable))
    identity = json.loads(_stage(config, model, target, seed, config.target_train, config.target_epochs, start=portable).to_json())
    identity["source_stage"] = json.loads(source_cell(config, model, source, seed).config.to_json())
    return Cell(name, run_config, _ledger(config, name), identity)


def _runs(workdir: Path, model: str) -> Path:
    return workdir / "runs" / model


def run_transfer(config, workdir: str | os.PathLike) -> dict:
    """Train, attack and evaluate every missing cell (``config.train``), then write and return the tables."""
    workdir = Path(workdir).absolute()
    try:
        check_transfer_config(config)
        _fetch_everything(config)  # a missing hub fails here, before anything is written
        workdir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(workdir / "transfer.json", json.loads(config.to_json()))
        settings = [attack_settings(config, a) for a in config.attacks]
        # Model by model, every seed of one before the next: a study stopped part-way has whole
        # heatmaps (with their seed spread) for the models it reached, smallest first.
        for model in config.model_names:
            for seed in config.seeds:
                _fill_model_seed(config, workdir, model, seed, settings)
    except HubUnreachable as e:
        if not config.offline_alternative or "make experiment EXP=" in str(e):
            raise
        raise HubUnreachable(f"this study needs the Hugging Face hub; without it run `make experiment EXP={config.offline_alternative}` ({e})") from e
    return write_transfer_tables(config, workdir)


def _fetch_everything(config) -> None:
    """Every task's splits and every model (and masked LM), fetched into the cache if missing."""
    from jaxrobust import assets
    from jaxrobust.data.tasks import get_task

    for task in config.tasks:
        get_task(task).load()
    for ref in [config.models[m] for m in config.model_names] + ([config.mlm] if "bertattack" in config.attacks else []):
        assets.resolve(ref)


def _fill_model_seed(config, workdir: Path, model: str, seed: int, settings: list[AttackSettings]) -> None:
    runs = _runs(workdir, model)
    # keep_models off: a run gives up its models once the ledger holds its cell whole.
    release = release_models if config.ledger and not config.keep_models else (lambda run: None)
    targets = sorted({t for _, t in pairs(config)}, key=list(config.tasks).index)
    for target in targets:
        cell = baseline_cell(config, model, target, seed)
        own = runs / f"baseline-{slug(target)}-s{seed}"
        fill_cell(cell, settings, own_run=own, found=finished_run(cell.config, [own]), train=config.train)
        if has_every_attack(read_entry(cell), settings):
            release(own)
    for source in sorted({s for s, _ in pairs(config)}, key=list(config.tasks).index):
        src = source_cell(config, model, source, seed)
        src_own = runs / f"source-{slug(source)}-s{seed}"
        # (target, its cell, its run folder) of every transfer from this source
        transfers = [(t, transfer_cell(config, model, source, t, seed, None), runs / f"transfer-{slug(source)}-{slug(t)}-s{seed}")
                     for s, t in pairs(config) if s == source]
        if not (all(_complete(cell, settings) for _, cell, _ in transfers) and _has(src, "source_test_accuracy")):
            _fill_transfers(config, model, source, seed, src, src_own, transfers, settings)
        for _, cell, own in transfers:
            if _complete(cell, settings):
                release(own)
        if all(_complete(cell, settings) for _, cell, _ in transfers):
            release(src_own)  # no transfer needs the source stage's model any more


def _fill_transfers(config, model: str, source: str, seed: int, src: Cell, src_own: Path, transfers,
                    settings: list[AttackSettings]) -> None:
    """The source stage (trained unless finished), then every transfer from it that the ledger lacks."""
    source_run = finished_run(src.config, [src_own])
    if source_run is None and config.train:
        source_run = train_into(src, src_own)
    if source_run is None:
        return
    _add_source_accuracy(src, source_run, source, [])
    for target, _, own in transfers:
        cell = transfer_cell(config, model, source, target, seed, source_run)
        fill_cell(cell, settings, own_run=own, found=finished_run(cell.config, [own]), train=config.train)
        if (own / "best").is_dir():
            _add_source_accuracy(cell, own, source, settings)


def _complete(cell: Cell, settings: list[AttackSettings]) -> bool:
    """Whether a transfer cell is recorded whole: every attack and its model's accuracy on the source task."""
    entry = read_entry(cell)
    return has_every_attack(entry, settings) and "source_test_accuracy" in entry


def _has(cell: Cell, key: str) -> bool:
    return key in (read_entry(cell) or {})


def _add_source_accuracy(cell: Cell, run: Path, source: str, settings: list[AttackSettings]) -> None:
    """Record the accuracy of ``run``'s selected model on the source task's whole test split."""
    if cell.ledger is None or _has(cell, "source_test_accuracy"):
        return
    from jaxrobust.data.conventions import conventions
    from jaxrobust.data.encoding import encode
    from jaxrobust.train import evaluate, load_run, task_of

    config, prepared = load_run(run)
    source_config = copy.deepcopy(config)
    source_config.task = source
    test = task_of(source_config).load().test
    encoded = encode(prepared.classifier.tokenizer, test, config.max_length)
    got = evaluate(prepared.classifier.model, encoded, config, conventions(prepared.classifier.tokenizer).pad_id, len(prepared.task.label_names))
    record(cell, run, settings)
    entry = json.loads(cell.ledger.read_text())
    entry["source_test_accuracy"] = got["accuracy"]
    write_json_atomic(cell.ledger, entry)


# --- the tables -----------------------------------------------------------------------------------

# A classifier whose clean accuracy on the attacked sample is within this of always answering the
# sample's commonest class has not learned the task: no attack can flip it, so it would read as robust.
COLLAPSE_MARGIN = 0.02

COLUMNS = ("model", "source", "target", "seed", "arm", "attack", "collapsed", "clean_accuracy", "accuracy_under_attack", "attack_success_rate",
           "mean_queries", "query_budget_exhausted_n", "precision_before", "recall_before", "f1_before", "precision_after",
           "recall_after", "f1_after", "confidence", "source_accuracy_before", "source_accuracy_after")


def _entry(cell: Cell, run: Path, settings) -> dict | None:
    """The cell from its ledger entry (source accuracy included) updated by its finished run, if any."""
    return cell_entry(cell, run if (run / "results.json").is_file() else None, settings)


def rows(config, workdir: Path) -> tuple[list[dict], list[tuple[str, int, str]]]:
    """The long-format rows of every finished cell, and the missing cells as (model, seed, name), a
    cell with only some attacks naming those it lacks."""
    settings = {a: attack_settings(config, a) for a in config.attacks}
    out, missing = [], []
    majority = {slug(t): _majority_rate(config, t) for t in config.tasks}

    def add(model, source, target, seed, arm, entry, before=None):
        attacked = (entry or {}).get("attacks", {})
        absent = [a for a, s in settings.items() if s.name not in attacked]
        if absent:
            name = f"{model} {arm} {source}>{target} seed {seed}"
            missing.append((model, seed, name if len(absent) == len(settings) else f"{name} ({', '.join(absent)})"))
        for attack, s in settings.items():
            if attack in absent:
                continue
            got = attacked[s.name]
            summary = got["summary"]
            out.append({
                "model": model, "source": source, "target": target, "seed": seed, "arm": arm, "attack": attack,
                "collapsed": summary["clean_accuracy"] <= majority[target] + COLLAPSE_MARGIN,
                **{k: summary.get(k) for k in ("clean_accuracy", "accuracy_under_attack", "attack_success_rate", "mean_queries",
                                               "query_budget_exhausted_n")},
                **got.get("metrics", {}),
                "source_accuracy_before": before, "source_accuracy_after": entry.get("source_test_accuracy") if arm == "transfer" else None,
            })

    for model in config.model_names:
        runs = _runs(workdir, model)
        for seed in config.seeds:
            for target in sorted({t for _, t in pairs(config)}, key=list(config.tasks).index):
                cell = baseline_cell(config, model, target, seed)
                add(model, "none", slug(target), seed, "baseline", _entry(cell, runs / f"baseline-{slug(target)}-s{seed}", list(settings.values())))
            for source, target in pairs(config):
                src = read_entry(source_cell(config, model, source, seed)) or {}
                cell = transfer_cell(config, model, source, target, seed, None)
                entry = _entry(cell, runs / f"transfer-{slug(source)}-{slug(target)}-s{seed}", list(settings.values()))
                add(model, slug(source), slug(target), seed, "transfer", entry, src.get("source_test_accuracy"))
    return out, missing


def _majority_rate(config, task: str) -> float:
    """The share of the commonest label in the attacked sample of ``task``'s test split."""
    from jaxrobust.attacks.run import sample_indices
    from jaxrobust.data.tasks import get_task

    test = get_task(task).load().test
    labels = [test[i].label for i in sample_indices(len(test), min(config.n_examples, len(test)), config.attack_seed)]
    return max(labels.count(c) for c in set(labels)) / len(labels)


def deltas(table: list[dict], model: str, key: str, attack: str) -> dict[tuple[str, str], list[float]]:
    """``{(source, target): [transfer − baseline of key, per seed with both arms learned]}`` for one
    model and attack (a pair of a seed where either arm collapsed is left out)."""
    base = {(r["target"], r["seed"]): r[key] for r in table
            if r["model"] == model and r["arm"] == "baseline" and r["attack"] == attack and not r["collapsed"]}
    out: dict[tuple[str, str], list[float]] = {}
    for r in table:
        if r["model"] == model and r["arm"] == "transfer" and r["attack"] == attack and (r["target"], r["seed"]) in base and not r["collapsed"]:
            out.setdefault((r["source"], r["target"]), []).append(r[key] - base[r["target"], r["seed"]])
    return out


def heatmap(config, found: dict[tuple[str, str], list[float]], title: str, path: Path, higher_is_worse: bool = False) -> None:
    """Mean over seeds, in points, source (rows) x target (columns), each cell annotated with its mean ± std;
    red where transfer made things worse."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [slug(t) for t in config.tasks]
    grid = np.full((len(names), len(names)), np.nan)
    for (s, t), values in found.items():
        grid[names.index(s), names.index(t)] = 100 * np.mean(values)
    limit = max(1.0, np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2.2, 1.1 * len(names) + 1.4))
    image = ax.imshow(grid, cmap="RdBu_r" if higher_is_worse else "RdBu", vmin=-limit, vmax=limit)
    for (s, t), values in found.items():
        spread = f"\n± {100 * np.std(values, ddof=1):.1f}" if len(values) > 1 else f"\n({len(values)} seed)"
        mean = 100 * np.mean(values)
        # White on the dark ends of the colour map, black elsewhere, so that every label reads.
        ax.text(names.index(t), names.index(s), f"{mean:+.1f}{spread}", ha="center", va="center", fontsize=8,
                color="white" if abs(mean) > 0.6 * limit else "black")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="points")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def forgetting_markdown(config, table: list[dict]) -> str:
    lines = ["# Forgetting: accuracy on the source task's test split, before and after the target stage", "",
             "Mean over seeds, in %. Before: the source stage's selected model; after: the transfer model.", "",
             "| model | source | target | before | after | change |", "|---|---|---|---|---|---|"]
    attack = config.attacks[0]
    for model in config.model_names:
        for source, target in pairs(config):
            got = [r for r in table if r["model"] == model and r["arm"] == "transfer" and r["attack"] == attack
                   and r["source"] == slug(source) and r["target"] == slug(target)
                   and r["source_accuracy_before"] is not None and r["source_accuracy_after"] is not None]
            if got:
                b, a = (100 * np.mean([r[k] for r in got]) for k in ("source_accuracy_before", "source_accuracy_after"))
                lines.append(f"| {model} | {slug(source)} | {slug(target)} | {b:.1f} | {a:.1f} | {a - b:+.1f} |")
    return "\n".join(lines) + "\n"


def summary_markdown(config, table: list[dict], missing: list[tuple[str, int, str]]) -> str:
    """What the numbers say: per model and attack, how often transfer left the target model less
    robust than its baseline, by how much, with what spread; and how that relates to model size."""
    lines = ["# Transfer learning and adversarial robustness: summary", "",
             f"Machine: {config.machine or 'not stated'}. Tasks: {', '.join(slug(t) for t in config.tasks)}; "
             f"{len(pairs(config))} ordered pairs; seeds {', '.join(map(str, config.seeds))}; target train "
             f"{config.target_train} examples; attacks on {config.n_examples} seeded test examples with a query budget of "
             f"{config.query_budget or 'none'}.", "",
             "Δ = transfer minus baseline, in points, paired by seed. Accuracy under attack is what survives the attack, "
             "so it also falls when clean accuracy falls; the attack success rate (sentences flipped / sentences classified "
             "correctly) is the vulnerability itself: a pair is *more vulnerable* after transfer when its mean Δ of success "
             "rate is above 0.", ""]
    for model in config.model_names:
        for attack in config.attacks:
            found = {key: deltas(table, model, key, attack) for key in ("clean_accuracy", "accuracy_under_attack", "attack_success_rate")}
            if not found["clean_accuracy"]:
                continue
            means = {key: {p: 100 * np.mean(v) for p, v in got.items()} for key, got in found.items()}
            average = {key: np.mean(list(m.values())) for key, m in means.items()}
            spreads = [np.mean(s) for key in ("accuracy_under_attack", "attack_success_rate")
                       if (s := [100 * np.std(v, ddof=1) for v in found[key].values() if len(v) > 1])]
            more = sorted((p for p, m in means["attack_success_rate"].items() if m > 0), key=means["attack_success_rate"].get, reverse=True)
            lower = sorted((p for p, m in means["accuracy_under_attack"].items() if m < 0), key=means["accuracy_under_attack"].get)
            n = len(means["clean_accuracy"])
            listed = lambda key, chosen: f" ({', '.join(f'{s}>{t} {means[key][s, t]:+.1f}' for s, t in chosen)})" if chosen else ""
            lines.append(
                f"- **{model}, {attack}**, mean over {n} pairs: clean accuracy {average['clean_accuracy']:+.1f}, accuracy under "
                f"attack {average['accuracy_under_attack']:+.1f}, attack success rate {average['attack_success_rate']:+.1f} points"
                + (f" (mean seed spread {spreads[0]:.1f} and {spreads[1]:.1f})" if len(spreads) == 2 else " (one seed, no spread)")
                + f". More vulnerable after transfer in {len(more)} of {n} pairs{listed('attack_success_rate', more)}; "
                f"accuracy under attack lower in {len(lower)} of {n}{listed('accuracy_under_attack', lower)}.")
    lines += size_markdown(_model_sizes(config), table, config.attacks, partial={model for model, *_ in missing})
    collapsed = sorted({f"{r['model']} {r['arm']} {r['source']}>{r['target']} seed {r['seed']}" if r["arm"] == "transfer"
                        else f"{r['model']} baseline {r['target']} seed {r['seed']}" for r in table if r["collapsed"]})
    if collapsed:
        lines += ["", f"Left out, runs that never learned (clean accuracy within {100 * COLLAPSE_MARGIN:.0f} points of always answering "
                  "the commonest class, which no attack can flip): " + "; ".join(collapsed) + "."]
    lines += ["", "The paper (Turbal et al. 2024) finds that transfer improves standard metrics but often increases "
              "vulnerability, and that larger models are more resilient; the lines above are what this run measured.",
              "", missing_markdown(missing)]
    return "\n".join(lines) + "\n"


def size_markdown(sizes: dict[str, int], table: list[dict], attacks, partial=frozenset()) -> list[str]:
    """How the mean Δ of accuracy under attack and of attack success rate go with model size
    (parameters), per attack, over the models that have deltas; the others are named as not measured yet.
    Models in `partial` still miss cells: their means are marked so, and a trend over them is provisional."""
    if len(sizes) < 2:
        return []
    ranked = sorted(sizes, key=sizes.get)
    measures = {"accuracy_under_attack": "accuracy under attack", "attack_success_rate": "attack success rate"}
    mean = {(m, a, key): 100 * np.mean([np.mean(v) for v in found.values()])
            for m in ranked for a in attacks for key in measures if (found := deltas(table, m, key, a))}
    measured = [m for m in ranked if all((m, a, key) in mean for a in attacks for key in measures)]
    line = "Model size (parameters): " + ", ".join(f"{m} {sizes[m] / 1e6:.0f}M" for m in ranked) + "."
    for key, label in measures.items():
        if measured:
            line += (f" Mean Δ of {label}, smallest model first: "
                     + "; ".join(f"{m}{' (partial)' * (m in partial)} " + ", ".join(f"{a} {mean[m, a, key]:+.1f}" for a in attacks)
                                 for m in measured) + ".")
        if len(measured) > 1:
            for a in attacks:
                steps = np.diff([mean[m, a, key] for m in measured])
                trend = "rises with size" if (steps > 0).all() else "falls with size" if (steps < 0).all() else "is not monotone in size"
                line += f" {a}: Δ {trend}" + (" (provisional: partial cells)." if partial & set(measured) else ".")
    if unmeasured := [m for m in ranked if m not in measured]:
        line += f" Not measured yet: {', '.join(unmeasured)}."
    return ["", line]


def missing_markdown(missing: list[tuple[str, int, str]]) -> str:
    """The missing cells, each by name when there are few, else counted per model and seed."""
    if not missing:
        return "Missing cells: none."
    if len(missing) <= 8:
        return "Missing cells: " + "; ".join(name for *_, name in missing) + "."
    counts = Counter((model, seed) for model, seed, _ in missing)
    return f"Missing cells: {len(missing)} (" + ", ".join(f"{m} seed {s}: {n}" for (m, s), n in counts.items()) + ")."


def _model_sizes(config) -> dict[str, int]:
    """Parameters of each model (its encoder or decoder, from its config; no weights read)."""
    from jaxrobust.models import load_classifier, parameter_count

    out = {}
    for model in config.model_names:
        try:
            out[model] = parameter_count(load_classifier(config.models[model], 2, weights=False, tokenizer=False).model)
        except JaxRobustError:
            continue
    return out


def write_transfer_tables(config, workdir: Path) -> dict:
    table, missing = rows(config, workdir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(table)
    write_text_atomic(workdir / "transfer.csv", buffer.getvalue())
    for model in config.model_names:
        for attack in config.attacks:
            found = deltas(table, model, "accuracy_under_attack", attack)
            if found:
                heatmap(config, found, f"{model}, {attack}: accuracy under attack, transfer − baseline (points)",
                        workdir / f"heatmap_{model}_{attack}.png")
            success = deltas(table, model, "attack_success_rate", attack)
            if success:
                heatmap(config, success, f"{model}, {attack}: attack success rate, transfer − baseline (points; > 0: more vulnerable)",
                        workdir / f"heatmap_{model}_{attack}_success.png", higher_is_worse=True)
        clean = deltas(table, model, "clean_accuracy", config.attacks[0])
        if clean:
            heatmap(config, clean, f"{model}: clean accuracy on the attacked sample, transfer − baseline (points)", workdir / f"heatmap_{model}_clean.png")
    write_text_atomic(workdir / "forgetting.md", forgetting_markdown(config, table))
    write_text_atomic(workdir / "summary.md", summary_markdown(config, table, missing))
    return {"rows": table, "missing": missing}
