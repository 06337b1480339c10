"""String-level truth: an adversarial example counts only on its re-tokenised final string.

Attacks search over token arrays assembled on device; what they report is decided here. Each final
text is written out as a string, tokenised from scratch by the model's tokenizer, and run through the
model; the attack succeeds only if that prediction differs from the label, at least one word was
substituted, every substitution is one of the slot's candidates, no more words changed than the
budget allows, and the final text passes the attack's constraints (:mod:`.constraints`: the part of
speech re-tagged on the final text, the sentence similarity re-computed from the strings); a flip
that fails them is reported with ``constraint_failed`` and is not a success. A text the attack left unchanged (a misclassified example, or no substitution
kept) is not run again: its probabilities are the clean ones.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxrobust.attacks import constraints, pos, report, shapes, validity
from jaxrobust.attacks.engine import Outcome
from jaxrobust.attacks.layout import AttackExample
from jaxrobust.attacks.victim import Victim, predict
from jaxrobust.data.encoding import encode
from jaxrobust.data.tasks import Example


def string_probs(victim: Victim, params, tokenizer, examples: Sequence[Example], batch_size: int = shapes.ROWS) -> np.ndarray:
    """``[N, C]`` class probabilities of ``examples`` tokenised from their strings, in the batch
    shapes of the search (:mod:`.shapes`)."""
    encoded = encode(tokenizer, examples, victim.max_length)
    out = None
    for rows, padded, length in shapes.length_batches([e.length for e in encoded], batch_size, victim.max_length):
        picked = [encoded[r] for r in padded]
        tokens = shapes.pad_tokens([e.input_ids for e in picked], length, tokenizer.pad_token_id, [e.token_type_ids for e in picked])
        p = np.asarray(predict(victim, params, tokens))
        out = np.zeros((len(examples), p.shape[1]), np.float32) if out is None else out
        out[rows] = p[: len(rows)]
    return out


def check(
    victim: Victim,
    params,
    tokenizer,
    items: Sequence[AttackExample],
    outcomes: Sequence[Outcome | None],
    budget: float,
    rules: constraints.Constraints | None = None,
    encoder=None,
    batch_size: int = shapes.ROWS,
) -> list[dict]:
    """One record per example of ``items`` (``None`` outcome: nothing attackable, left unchanged),
    the final texts checked against ``rules`` (the similarity with ``encoder``) and run in device
    batches of ``batch_size`` rows (the search's, so they share its compiled programs).

    Record keys: ``index, label, original_text, perturbed_text, substitutions, original_probs,
    perturbed_probs, success, skipped, reason, constraint_failed, queries, gradients, n_words,
    words_changed, clean_prob_true, low_confidence`` (see :func:`report.is_low_confidence`).
    """
    return check_budgets(victim, params, tokenizer, items, [outcomes], [budget], rules, encoder, batch_size)[0]


def check_budgets(
    victim: Victim,
    params,
    tokenizer,
    items: Sequence[AttackExample],
    outcome_lists: Sequence[Sequence[Outcome | None]],
    budgets: Sequence[float],
    rules: constraints.Constraints | None = None,
    encoder=None,
    batch_size: int = shapes.ROWS,
) -> list[list[dict]]:
    """:func:`check` of the outcomes of ``items`` at each of ``budgets`` (one list per budget, as a
    sweep's search gives them): every distinct final text is run through the model, and its
    constraints checked, once."""
    if not items:
        return [[] for _ in budgets]
    key = lambda i, o: (i, None if o is None else np.asarray(o.choice).tobytes())
    finals, subs_of = {}, {}  # by (item, choice)
    for outcomes in outcome_lists:
        for i, (ae, o) in enumerate(zip(items, outcomes)):
            if key(i, o) not in finals:
                finals[key(i, o)] = ae.perturbed_example(o.choice) if o is not None else ae.example
                subs_of[key(i, o)] = ae.substitutions(o.choice) if o is not None else []
    # A text the attack left unchanged keeps its clean probabilities; only texts that were never
    # evaluated (nothing attackable) or were changed go through the model again.
    rerun = [k for k in finals if k[1] is None or subs_of[k]]
    final_probs = dict(zip(rerun, string_probs(victim, params, tokenizer, [finals[k] for k in rerun], batch_size))) if rerun else {}
    lists = []
    for outcomes, budget in zip(outcome_lists, budgets):
        records = []
        for i, (ae, o) in enumerate(zip(items, outcomes)):
            k = key(i, o)
            _check_constraints(ae, o, budget)
            records.append(_record(ae, o, finals[k], final_probs.get(k, o.orig_probs if o is not None else None), subs_of[k]))
        lists.append(records)
    if rules is not None:
        flips = [(key(i, o), r) for records, outcomes in zip(lists, outcome_lists)
                 for i, (r, o) in enumerate(zip(records, outcomes)) if r["success"]]
        distinct = dict(flips)
        failed = dict(zip(distinct, failed_constraints(list(distinct.values()), rules, encoder)))
        for k, r in flips:
            r["constraint_failed"], r["success"] = failed[k], not failed[k]
    return lists


def _record(ae: AttackExample, o: Outcome | None, final, p: np.ndarray, subs: list) -> dict:
    """The record of one example's final text ``final`` with probabilities ``p`` (see :func:`check`)."""
    label = ae.example.label
    original_probs = o.orig_probs if o is not None else p
    misclassified = int(np.argmax(original_probs)) != label
    reason = "misclassified" if misclassified else "no attackable word" if o is None else ""
    record = dict(
        index=ae.index,
        label=label,
        original_text=ae.text,
        perturbed_text=final.text_b if final.text_b is not None else final.text,
        substitutions=[list(s) for s in subs],
        original_probs=[float(x) for x in original_probs],
        perturbed_probs=[float(x) for x in p],
        success=bool(not misclassified and subs and int(np.argmax(p)) != label),
        skipped=bool(reason),
        reason=reason,
        queries=int(o.queries) if o is not None else 1,
        gradients=int(o.gradients) if o is not None else 0,
        n_words=ae.n_words,
        words_changed=len(subs),
        constraint_failed="",
    )
    record.update(clean_prob_true=report.clean_prob_true(record), low_confidence=report.is_low_confidence(record))
    return record


def failed_constraints(records: Sequence[dict], rules: constraints.Constraints, encoder) -> list[str]:
    """For each record, the constraint its final text fails (``pos``, ``similarity``) or ``""``; the
    similarities of all records in one batched call."""
    failed = ["pos" if rules.pos and not validity.keeps_pos(r, pos.tagger()) else "" for r in records]
    if rules.similarity is not None:
        rest = [i for i, f in enumerate(failed) if not f]
        texts = [(records[i]["original_text"], records[i]["perturbed_text"], [w for w, _, _ in records[i]["substitutions"]]) for i in rest]
        for i, sim in zip(rest, constraints.string_similarities(encoder, rules, texts)):
            if sim < rules.similarity - constraints.RECHECK_SLACK:
                failed[i] = "similarity"
    return failed


def _check_constraints(ae: AttackExample, o: Outcome | None, budget: float) -> None:
    """Raise if an attack broke the rules (a bug, never a user error)."""
    if o is None:
        return
    changed = [(slot, c) for slot, c in enumerate(o.choice[: len(ae.slot_words)]) if c >= 0]
    if len(changed) > ae.max_changes(budget):
        raise AssertionError(f"example {ae.index}: {len(changed)} words changed, budget allows {ae.max_changes(budget)}")
    for slot, c in changed:
        if c >= len(ae.candidates[slot]):
            raise AssertionError(f"example {ae.index}: slot {slot} took a padding candidate")
    if (o.choice[len(ae.slot_words) :] >= 0).any():
        raise AssertionError(f"example {ae.index}: a padding slot was changed")
