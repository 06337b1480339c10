"""Accuracy under the gradient attack across budgets and runs, in one compiled program per length.

The budget of :func:`gradient.gradient_attack` is a traced scalar and the model enters as a
parameter pytree, so ``vmap`` over budgets and over parameters stacked on a leading axis (runs of
one architecture, e.g. the seeds of an experiment) turns the whole sweep into one program per shape
length. Every final text is then checked on its re-tokenised string (:mod:`verify`), per run and
budget, exactly as the ``attack`` command does.

Constraints: A2T's, as ``attack --attack gradient`` applies them (:mod:`.constraints`): the
part-of-speech mask is in the candidates, and the whole-text similarity is computed inside the
program, the sentence encoder reading the same choices from its own layout of the examples.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import interrupt
from jaxrobust.attacks import constraints, engine, gradient, verify
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
    """Refuse runs that cannot be swept together: another architecture or another task."""
    first = targets[0]
    for t in targets[1:]:
        if t.victim != first.victim or jax.tree.structure(t.params) != jax.tree.structure(first.params):
            raise JaxRobustError(f"{t.source} and {first.source} differ in architecture or settings: cannot sweep them together")
        if t.task.name != first.task.name:
            raise JaxRobustError(
                f"cannot sweep runs of different tasks together: {t.source} is a {t.task.name} run, {first.source} a {first.task.name} run"
            )


def stack_params(targets: Sequence[Target]):
    """Parameters of ``targets`` stacked on a new leading axis (they must share one architecture)."""
    check_sweepable(targets)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[t.params for t in targets])


@functools.partial(jax.jit, static_argnames=("victim", "length", "verify", "max_iters", "encoder", "encoder_length"))
def _sweep_program(victim, stacked, lay, budgets, similarity, *, length, verify, max_iters, encoder, encoder_length):
    """``choice [R, Bu, N, W]`` for runs R (stacked params) x budgets Bu, all in one program."""
    attack = functools.partial(gradient.gradient_attack, victim, length=length, verify=verify, max_iters=max_iters,
                               similarity=similarity, encoder=encoder, encoder_length=encoder_length)
    per_budget = jax.vmap(lambda params, b: attack(params, lay, b)["choice"], in_axes=(None, 0))
    return jax.vmap(per_budget, in_axes=(0, None))(stacked, budgets)


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
    batch_size: int = 32,
    rules: constraints.Constraints = constraints.RECIPES["gradient"],
    encoder=None,
) -> dict:
    """Accuracy under attack ``[runs][budgets]`` on one seeded test sample; see :func:`write_sweep`.
    ``encoder`` (a :class:`~jaxrobust.attacks.sentence_encoder.SentenceEncoder`) computes the
    similarity constraint of ``rules``: whole texts and cosine only, as A2T's."""
    if rules.similarity is not None and (rules.window is not None or rules.metric != "cosine" or encoder is None):
        raise JaxRobustError("sweep applies A2T's similarity constraint only: whole texts, cosine, with a sentence encoder")
    if not budgets or any(not 0 < b <= 1 for b in budgets):
        raise JaxRobustError(f"budgets must be in (0, 1], got {list(budgets)}")
    first = targets[0]
    stacked = stack_params(targets)
    test = first.test
    indices = sample_indices(len(test), min(n, len(test)), seed)
    examples = [test[i] for i in indices]
    items = prepare_examples(first.tokenizer, examples, candidates_of, first.victim.max_length, k, same_pos=rules.pos)
    for ae, index in zip(items, indices):
        ae.index = int(index)
    attackable = [ae for ae in items if ae.slot_words]
    choices = {}  # (run, budget) -> {example index: choice}
    start = time.perf_counter()
    budget_arr = jnp.asarray(budgets, jnp.float32)
    group = engine.make_group(first.tokenizer, attackable, max(budgets), first.victim.max_length, k) if attackable else None
    check = None
    if group is not None and rules.similarity is not None:
        check = constraints.SimilarityFilter(encoder, group.members, rules, group.layout.cand_len.shape[1:])
        reference = check.references(np.arange(len(group.members)))
        encoder_lengths = check.padded_lengths(max(budgets))
    for lo in range(0, len(attackable), batch_size):
        rows = np.arange(lo, min(lo + batch_size, len(attackable)))
        interrupt.check()  # Ctrl-C stops between device batches
        similarity, encoder_length = None, 0
        if check is not None:
            similarity = dict(params=encoder.params, layout=check.layout.rows(rows), reference=reference[rows],
                              threshold=np.float32(rules.similarity))
            encoder_length = int(encoder_lengths[rows].max())
        out = np.asarray(_sweep_program(
            first.victim, stacked, group.layout.rows(rows), budget_arr, similarity,
            length=group.length_of(rows), verify=verify_top, max_iters=max_iters,
            encoder=encoder.static if check is not None else None, encoder_length=encoder_length,
        ))
        for r in range(len(targets)):
            for b in range(len(budgets)):
                for row, member in enumerate(rows):
                    choices.setdefault((r, b), {})[group.members[member].index] = out[r, b, row]
    seconds = time.perf_counter() - start
    accuracy = np.zeros((len(targets), len(budgets)))
    clean = np.zeros(len(targets))
    for r, target in enumerate(targets):
        # The sweep kept no clean probabilities: take them from the strings, once per run.
        clean_probs = verify.string_probs(target.victim, target.params, target.tokenizer, [ae.example for ae in items])
        for b, budget in enumerate(budgets):
            picked = choices.get((r, b), {})
            outcomes = [
                engine.Outcome(picked[ae.index], p, 0) if ae.index in picked else None
                for ae, p in zip(items, clean_probs)
            ]
            records = verify.check(target.victim, target.params, target.tokenizer, items, outcomes, budget, rules=rules, encoder=encoder)
            correct = [not (r_["skipped"] and r_["reason"] == "misclassified") for r_ in records]
            accuracy[r, b] = np.mean([c and not r_["success"] for c, r_ in zip(correct, records)])
            clean[r] = np.mean(correct)
    return dict(
        runs=[t.source for t in targets], budgets=list(map(float, budgets)), n=len(items),
        clean_accuracy=clean.tolist(), accuracy_under_attack=accuracy.tolist(), seconds=seconds,
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
