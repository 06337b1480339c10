"""Tuning on dev, the same budget for every method: the ``tune`` mode of the robustness study.

``run_tuning(config, workdir)`` (``make experiment EXP=tuning_minilm``) trains every setting of every
method (``config.grid[method]``: the same number of settings for each, each a string of ``KEY=VALUE``
overrides of the method's experiment) with seed 0 into ``WORKDIR/runs/METHOD-I``, and scores it on a
seeded sample of the dev split: clean accuracy, and accuracy under each attack of ``config.attacks``
(the first, the gradient attack, is the one the choice reads; the others are reported). No test
figure enters the choice (a run still reports its test accuracy, as every run does; nothing is
attacked on test).

The choice, fixed before any result was seen (:func:`choose`): for each method, the highest dev
accuracy under the gradient attack among its settings whose clean dev accuracy is within
``config.margin`` of the best FT setting's; if none qualifies, its highest clean dev accuracy.

Cells (a setting's run and its dev attack) are filled, cached and recorded in ``config.ledger`` as the
study's are (:func:`jaxrobust.study.fill_cell`), so the tuning spreads over several sittings.
Outputs in ``WORKDIR``: ``tuning_table.md`` and ``tuning_table.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_collections

from jaxrobust.attacks.run import AttackSettings
from jaxrobust.configs import load_config
from jaxrobust.errors import JaxRobustError
from jaxrobust.io import write_json_atomic, write_text_atomic
from jaxrobust.study import Cell, cell_entry, fill_cell, finished_run


def tuning_config() -> ml_collections.ConfigDict:
    """Every key the tune mode reads; ``experiments/tuning_*.py`` start from this."""
    c = ml_collections.ConfigDict()
    c.study = "tune"  # a study config that the ``experiment`` command runs with run_tuning
    c.experiments = ml_collections.ConfigDict()  # method -> experiment config name
    c.methods = ()  # the methods tuned, in table order; "ft" gives the clean-accuracy reference
    c.grid = ml_collections.ConfigDict()  # method -> its settings: strings of space-separated KEY=VALUE overrides
    c.seed = 0  # the training seed of every setting
    c.n_examples = 500  # seeded sample of the dev split, clean and under the attacks
    c.attacks = ("gradient",)  # the first one is the choice's; the others are reported beside it
    c.attack_seed = 0
    c.budget = 0.2  # share of the words the attack may change
    # The gradient attack's candidates: the robustness study's (the robust objectives' substitution set).
    c.synonyms = ml_collections.ConfigDict(dict(source="wordnet-cf", k=8, min_cos=0.5))
    c.margin = 0.03  # a setting qualifies with clean dev accuracy at least the best FT setting's minus this
    c.train = True  # False: score only the runs that exist
    c.ledger = ""  # where finished cells are also recorded ("" = nowhere)
    c.machine = ""  # what the table says it was measured on
    return c


def is_tuning(config) -> bool:
    return config.get("study") == "tune"


def check_tuning_config(config) -> None:
    if not config.methods:
        raise JaxRobustError("--config.methods is empty; known methods: " + ", ".join(config.experiments))
    for method in config.methods:
        if method not in config.experiments or method not in config.grid:
            raise JaxRobustError(f"unknown method {method!r} in --config.methods; known: {', '.join(config.grid)}")
    sizes = {len(config.grid[m]) for m in config.methods}
    if len(sizes) != 1 or not 0 < sizes.pop() <= 4:
        raise JaxRobustError("every method needs the same number of settings (1 to 4): the same tuning budget; got "
                             + ", ".join(f"{m} {len(config.grid[m])}" for m in config.methods))
    from jaxrobust.attacks.run import ATTACKS

    bad = [a for a in config.attacks if a not in ATTACKS]
    if not config.attacks or bad:
        raise JaxRobustError(f"--config.attacks must name known attacks ({', '.join(ATTACKS)}); got {', '.join(config.attacks) or 'none'}")
    if "ft" not in config.methods:
        raise JaxRobustError("tuning needs the ft method: its best clean dev accuracy is the reference of the choice")
    if config.n_examples < 1 or not 0 < config.budget <= 1 or not 0 <= config.margin < 1:
        raise JaxRobustError("--config.n_examples must be >= 1, --config.budget in (0, 1] and --config.margin in [0, 1)")
    for method in config.methods:
        for setting in config.grid[method]:
            setting_config(config, method, setting)  # an unknown key or a bad value fails before any training


def setting_config(config, method: str, setting: str) -> ml_collections.ConfigDict:
    """The run config of one setting: the method's experiment with the setting's overrides and the tuning seed."""
    return load_config(config.experiments[method], [*setting.split(), f"seed={config.seed}"])


def dev_attacks(config) -> list[AttackSettings]:
    """The attacks every setting is scored with on dev, the choice's first."""
    s = config.synonyms
    return [AttackSettings(a, s.source, config.n_examples, config.budget, config.attack_seed, k=s.k, min_cos=s.min_cos, split="dev")
            for a in config.attacks]


def setting_cell(config, method: str, index: int) -> Cell:
    ledger = Path(config.ledger) / f"{method}-{index}.json" if config.ledger else None
    return Cell(f"{method} setting {index} ({config.grid[method][index]})", setting_config(config, method, config.grid[method][index]), ledger)


def run_tuning(config, workdir: str | os.PathLike) -> dict:
    """Train and score every missing setting (``config.train``), then write and return the table.
    Settings are the outer loop, so an interrupted tuning has its first settings of every method first."""
    workdir = Path(workdir).absolute()
    check_tuning_config(config)
    workdir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(workdir / "tuning.json", json.loads(config.to_json()))
    attacks = dev_attacks(config)
    for index in range(len(config.grid[config.methods[0]])):
        for method in config.methods:
            cell = setting_cell(config, method, index)
            fill_cell(cell, attacks, own_run=workdir / "runs" / f"{method}-{index}", found=_find(config, workdir, method, index),
                      train=config.train)
    return write_tuning_table(config, workdir)


def _find(config, workdir: Path, method: str, index: int) -> Path | None:
    """A finished run of the setting: the tuning's own, or any run of exactly its config beside it
    (the setting equal to today's experiment config is the robustness study's seed-0 run)."""
    places = [workdir / "runs" / f"{method}-{index}", workdir.parent / config.experiments[method]]
    return finished_run(setting_cell(config, method, index).config, places + sorted(workdir.parent.glob("*/runs/*")))


def scores(config, workdir: Path) -> dict[str, list[dict | None]]:
    """``{method: [{"setting", "clean", "attacked", "under"} or None (not every attack finished), ...]}``
    on the dev sample: ``attacked`` under the choice's attack, ``under`` under each attack by name."""
    attacks = dev_attacks(config)
    out = {}
    for method in config.methods:
        rows = []
        for index, setting in enumerate(config.grid[method]):
            cell = setting_cell(config, method, index)
            entry = cell_entry(cell, _find(config, workdir, method, index), attacks)
            reports = [(entry or {}).get("attacks", {}).get(a.name) for a in attacks]
            rows.append(None if None in reports else {
                "setting": setting,
                "clean": reports[0]["summary"]["clean_accuracy"],
                "attacked": reports[0]["summary"]["accuracy_under_attack"],
                "under": {a.attack: r["summary"]["accuracy_under_attack"] for a, r in zip(attacks, reports)},
            })
        out[method] = rows
    return out


def qualifies(row: dict, reference: float, margin: float) -> bool:
    """Whether a setting's clean dev accuracy is within ``margin`` of the best FT setting's (``reference``)."""
    return row["clean"] >= reference - margin - 1e-12  # (the bound itself qualifies, whatever the rounding)


def choose(rows: list[dict | None], reference: float, margin: float) -> int | None:
    """The chosen setting's index among ``rows`` (scores as :func:`scores` gives them): the highest
    accuracy under attack among those with clean accuracy >= ``reference - margin``, else the highest
    clean accuracy; ties go to the earlier setting; None until every setting is scored."""
    if not rows or any(r is None for r in rows):
        return None
    qualified = [i for i, r in enumerate(rows) if qualifies(r, reference, margin)]
    if qualified:
        return max(qualified, key=lambda i: (rows[i]["attacked"], -i))
    return max(range(len(rows)), key=lambda i: (rows[i]["clean"], -i))


def tuning_table(config, found: dict[str, list[dict | None]]) -> dict:
    """The ``tuning_table.json`` content: every setting's scores, the FT reference and each method's choice."""
    ft = [r["clean"] for r in found["ft"] if r is not None]
    reference = max(ft) if ft and len(ft) == len(found["ft"]) else None
    methods = {}
    for method, rows in found.items():
        chosen = None if reference is None else choose(rows, reference, config.margin)
        methods[method] = {"settings": list(config.grid[method]), "scores": rows, "chosen": chosen,
                           "qualifies": [None if r is None or reference is None else qualifies(r, reference, config.margin) for r in rows]}
    missing = [f"{m} setting {i} ({config.grid[m][i]})" for m, rows in found.items() for i, r in enumerate(rows) if r is None]
    return {
        "machine": config.machine,
        "seed": config.seed,
        "n_examples": config.n_examples,
        "attack": dev_attacks(config)[0].name,
        "attacks": list(config.attacks),
        "margin": config.margin,
        "ft_reference": reference,
        "methods": methods,
        "missing": missing,
    }


def tuning_markdown(table: dict) -> str:
    ref = table["ft_reference"]
    attacks = table["attacks"]
    lines = [
        "# Tuning on dev",
        "",
        f"Machine: {table['machine'] or 'not stated'}. Every setting trained with seed {table['seed']}, scored on the same "
        f"seeded sample of {table['n_examples']} dev sentences: clean accuracy and accuracy under "
        + ("the gradient attack" if attacks == ["gradient"] else "each attack")
        + f" (`{table['attack']}`" + ("" if len(attacks) == 1 else " and the same settings for the others") + "). No test figure enters the choice.",
        "",
        f"Choice, fixed before any result: the highest accuracy under the {attacks[0]} attack among the settings whose clean dev "
        f"accuracy is at least the best FT setting's ({'–' if ref is None else f'{100 * ref:.1f}'} %) minus "
        f"{100 * table['margin']:g} points; if none qualifies, the highest clean dev accuracy. Chosen settings are marked **bold**.",
        "",
        "| method | setting | clean dev | " + " | ".join(f"{a} dev" for a in attacks) + " | qualifies |",
        "|---|---|---|" + "---|" * len(attacks) + "---|",
    ]
    for method, entry in table["methods"].items():
        for i, (setting, row, ok) in enumerate(zip(entry["settings"], entry["scores"], entry["qualifies"])):
            name = f"**{setting}**" if entry["chosen"] == i else setting
            cells = ["–"] * (1 + len(attacks)) if row is None else [f"{100 * row['clean']:.1f}"] + [f"{100 * row['under'][a]:.1f}" for a in attacks]
            lines.append(f"| {method} | {name} | " + " | ".join(cells) + f" | {'–' if ok is None else 'yes' if ok else 'no'} |")
    lines += rift_minus_ft(table)
    lines += ["", "Missing settings: " + ("; ".join(table["missing"]) if table["missing"] else "none") + "."]
    return "\n".join(lines) + "\n"


def rift_minus_ft(table: dict) -> list[str]:
    """The chosen RIFT setting's dev accuracies minus the chosen FT setting's, clean and under each
    attack (nothing until both are chosen)."""
    chosen = {m: table["methods"][m]["scores"][table["methods"][m]["chosen"]] for m in ("ft", "rift")
              if m in table["methods"] and table["methods"][m]["chosen"] is not None}
    if len(chosen) < 2:
        return []
    rift, ft = chosen["rift"], chosen["ft"]
    gaps = [f"clean {100 * (rift['clean'] - ft['clean']):+.1f}"] + [
        f"{a} {100 * (rift['under'][a] - ft['under'][a]):+.1f}" for a in table["attacks"]]
    return ["", "Chosen RIFT minus chosen FT on dev, in points: " + ", ".join(gaps) + "."]


def write_tuning_table(config, workdir: Path) -> dict:
    table = tuning_table(config, scores(config, workdir))
    write_json_atomic(workdir / "tuning_table.json", table)
    write_text_atomic(workdir / "tuning_table.md", tuning_markdown(table))
    return table
