"""Accuracy under the gradient attack across budgets and runs, sharing what they share.

* **Budgets.** The budget only stops a search (at ``max_changes(budget)`` words changed), never
  changes what it tries, so one search at the largest budget passes through the state where every
  smaller budget's search stops (:func:`engine.run_gradient_budgets` records it): K budgets cost one
  search, and their outcomes equal K separate attacks.
* **Runs** (of one architecture and task, e.g. the seeds of an experiment) share the sampled
  examples, their layout, the compiled programs, the similarity filter's embeddings of trial texts
  (runs try many of the same texts) and the sentence encoder's embeddings of the final strings;
  each run's own search runs its own model.
* Every final text is checked on its re-tokenised string (:mod:`verify`), per run and budget, as
  the ``attack`` command does, each distinct text once per run.

The results equal ``attack --attack gradient`` at each budget on each run (tested).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

from jaxrobust import interrupt
from jaxrobust.attacks import constraints, engine, shapes, verify
from jaxrobust.attacks.layout import prepare_examples
from jaxrobust.attacks.run import Target, sample_indices
from jaxrobust.errors import JaxRobustError
from jaxrobust.io import write_json_atomic, write_text_atomic


def parse_budgets(text: str) -> list[float]:
    """``"0.05,0.1"`` -> ``[0.05, 0.1]``: comma-separated shares of words, each in (0, 1]."""
    try:
        budgets = [float(b) for b in text.split(",")]
    except ValueError:
        raise JaxRobustError(f"--budgets must be comma-separated numbers, e.g. 0.05,0.1,0.2; got {text!r}") from None
    if any(not 0 < b <= 1 for b in budgets):
        raise JaxRobustError(f"--budgets must each be in (0, 1] (a share of the words), got {text!r}")
    return budgets


def check_sweepable(targets: Sequence[Target]) -> None:
    """Refuse runs that cannot be swept together (they share one layout of the examples): another
    architecture or another task."""
    first = targets[0]
    for t in targets[1:]:
        if t.victim != first.victim or jax.tree.structure(t.params) != jax.tree.structure(first.params):
            raise JaxRobustError(f"{t.source} and {first.source} differ in architecture or settings: cannot sweep them together")
        if t.task.name != first.task.name:
            raise JaxRobustError(
                f"cannot sweep runs of different tasks together: {t.source} is a {t.task.name} run, {first.source} a {first.task.name} run"
            )


def sweep(
    targets: Sequence[Target],
    budgets: Sequence[float],
    candidates_of,
    *,
    n: int,
    seed: int = 0,
    k: int = 20,
    verify_top: int = 6,
    max_iters: int = 20,
    batch_size: int = shapes.ROWS,
    rules: constraints.Constraints = constraints.RECIPES["gradient"],
    encoder=None,
) -> dict:
    """Accuracy under attack ``[runs][budgets]`` on one seeded test sample; see :func:`write_sweep`.
    ``encoder`` (a :class:`~jaxrobust.attacks.sentence_encoder.SentenceEncoder`) computes the
    similarity constraint of ``rules``."""
    if rules.similarity is not None and encoder is None:
        raise JaxRobustError("the similarity constraint needs a sentence encoder")
    if not budgets or any(not 0 < b <= 1 for b in budgets):
        raise JaxRobustError(f"budgets must be in (0, 1], got {list(budgets)}")
    check_sweepable(targets)
    first = targets[0]
    indices = sample_indices(len(first.test), min(n, len(first.test)), seed)
    items = prepare_examples(first.tokenizer, [first.test[i] for i in indices], candidates_of, first.victim.max_length, k, same_pos=rules.pos)
    for ae, index in zip(items, indices):
        ae.index = int(index)
    attackable = [ae for ae in items if ae.slot_words]
    idle = [ae for ae in items if not ae.slot_words]
    group = engine.make_group(first.tokenizer, attackable, max(budgets), first.victim.max_length, k) if attackable else None
    allowed = None
    if group is not None and rules.similarity is not None:
        allowed = constraints.SimilarityFilter(encoder, group.members, rules, group.layout.cand_len.shape[1:]).allowed
    start = time.perf_counter()
    accuracy = np.zeros((len(targets), len(budgets)))
    clean = np.zeros(len(targets))
    for r, t in enumerate(targets):
        interrupt.check()  # Ctrl-C stops between runs too (and between device batches inside)
        per_budget = [[] for _ in budgets]
        if group is not None:
            finals = verify.FinalTexts(t.tokenizer, group.members, t.victim.max_length, t.victim.pad_id, rules, encoder)
            outcomes = engine.run_gradient_budgets(t.victim, t.params, group, budgets, batch_size=batch_size,
                                                   verify=verify_top, max_iters=max_iters, allowed=allowed, finals=finals)
            per_budget = verify.check_budgets(t.victim, t.params, t.tokenizer, group.members, outcomes, budgets,
                                              rules=rules, encoder=encoder, batch_size=batch_size, probs=finals.probs)
        untouched = verify.check(t.victim, t.params, t.tokenizer, idle, [None] * len(idle), max(budgets), batch_size=batch_size)
        for b, records in enumerate(per_budget):
            records = records + untouched
            correct = [not (x["skipped"] and x["reason"] == "misclassified") for x in records]
            accuracy[r, b] = np.mean([c and not x["success"] for c, x in zip(correct, records)])
            clean[r] = np.mean(correct)
    return dict(
        runs=[t.source for t in targets], budgets=list(map(float, budgets)), n=len(items),
        clean_accuracy=clean.tolist(), accuracy_under_attack=accuracy.tolist(), seconds=time.perf_counter() - start,
        task=first.task.name, k=k, constraints=rules.tag,
    )


def write_sweep(result: dict, out_dir: Path) -> None:
    """``sweep.json``, ``sweep.md`` and ``robust_accuracy_vs_budget.png`` in ``out_dir``."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = result["budgets"]
    lines = [
        f"Accuracy under the gradient attack, {result['task']}, n={result['n']}, top-{result['k']} candidates, "
        f"constraints: {result['constraints']}",
        "",
        "| run | clean | " + " | ".join(f"budget {b:g}" for b in budgets) + " |",
        "|---|---|" + "---|" * len(budgets),
    ]
    for run, clean, accs in zip(result["runs"], result["clean_accuracy"], result["accuracy_under_attack"]):
        lines.append(f"| {run} | {clean:.3f} | " + " | ".join(f"{a:.3f}" for a in accs) + " |")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for run, clean, accs in zip(result["runs"], result["clean_accuracy"], result["accuracy_under_attack"]):
        ax.plot([0.0, *budgets], [clean, *accs], marker="o", label=Path(run).name or run)
    ax.set_xlabel("budget (max share of words changed)")
    ax.set_ylabel("accuracy under attack")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    plt.close(fig)
    with interrupt.deferred():  # everything rendered: write it whole, Ctrl-C waits until done
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "sweep.json", result)
        write_text_atomic(out_dir / "sweep.md", "\n".join(lines) + "\n")
        tmp = out_dir / ".robust_accuracy_vs_budget.png.tmp"
        tmp.write_bytes(png.getvalue())
        tmp.replace(out_dir / "robust_accuracy_vs_budget.png")
