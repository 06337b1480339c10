"""String-level truth: an adversarial example counts only on its re-tokenised final string.

Attacks search over token arrays assembled on device; what they report is decided here. Each final
text is written out as a string, tokenised from scratch by the model's tokenizer, and run through the
model; the attack succeeds only if that prediction differs from the label, at least one word was
substituted, every substitution is one of the slot's candidates, no more words changed than the
budget allows, and the final text passes the attack's constraints (:mod:`.constraints`: the part of
speech re-tagged on the final text, the sentence similarity re-computed from the strings); a flip
that fails them is reported with ``constraint_failed`` and is not a success. A text the attack left unchanged (a misclassified example, or no substitution
kept) is not run again: its probabilities are the clean ones.

The model pass over the final strings need not be a pass of its own: the gradient search hands
each text it settles to :class:`FinalTexts`, which tokenises it from its string at once and lets it
ride in the free rows of the search's next device batch of the same padded length (a partial batch
is otherwise filled with copies of its first row), in the same compiled program; only the texts
settled too late to ride go through :func:`string_probs` at the end.
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
        tokens = shapes.pad_tokens([e.input_ids for e in picked], length, victim.pad_id, [e.token_type_ids for e in picked])
        p = np.asarray(predict(victim, params, tokens))
        out = np.zeros((len(examples), p.shape[1]), np.float32) if out is None else out
        out[rows] = p[: len(rows)]
    return out


Key = tuple  # (member row, choice bytes): one final text of a group


def final_key(row: int, choice: np.ndarray | None) -> Key:
    return (row, None if choice is None else np.asarray(choice).tobytes())


class FinalTexts:
    """Final texts of a group's members, tokenised from their strings when the search settles them,
    waiting for free rows in the search's device batches (module docstring; :class:`shapes.FreeRows`).

    :meth:`settle` queues texts, the scorer fills ``rows`` into its batches, and :meth:`store` keeps
    their probabilities, read by :func:`check_budgets` as ``probs``. With a similarity constraint
    (``rules``, ``encoder``) the texts its re-check compares are queued on the encoder too
    (:meth:`SentenceEncoder.queue`), to ride in the similarity filter's batches.
    """

    def __init__(self, tokenizer, members: Sequence[AttackExample], max_length: int, pad_id: int,
                 rules: constraints.Constraints | None = None, encoder=None):
        self.tokenizer, self.members, self.max_length = tokenizer, members, max_length
        self.encoder = encoder if rules is not None and rules.similarity is not None else None
        self.rules = rules
        self.rows = shapes.FreeRows(max_length, pad_id)
        self._seen: set[Key] = set()
        self.probs: dict[Key, np.ndarray] = {}  # final key -> [C] probabilities of its string

    def settle(self, rows: np.ndarray, choices: np.ndarray) -> None:
        """Queue the final texts of members ``rows [R]`` with ``choices [R, W]`` (unchanged texts,
        which keep their clean probabilities, and texts already queued are left out)."""
        new = {}
        for row, choice in zip(np.asarray(rows).tolist(), np.asarray(choices)):
            key = final_key(row, choice)
            if key not in self._seen and (choice >= 0).any():
                new[key] = (self.members[row], choice)
        self._seen.update(new)
        finals = [ae.perturbed_example(choice) for ae, choice in new.values()]
        encoded = encode(self.tokenizer, finals, self.max_length)
        self.rows.add(list(new), [e.input_ids for e in encoded], [e.token_type_ids for e in encoded])
        if self.encoder is not None:
            pairs = [constraints.string_pairs(self.rules, ae.text, _attacked(final), [w for w, _, _ in ae.substitutions(choice)])
                     for (ae, choice), final in zip(new.values(), finals)]
            self.encoder.queue([t for text_pairs in pairs for pair in text_pairs for t in pair])

    def store(self, keys: Sequence[Key], probs: np.ndarray) -> None:
        """Keep ``probs [len(keys), C]``, the model's output on the rows filled for ``keys``."""
        self.probs.update(zip(keys, np.asarray(probs)))


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
    probs: dict | None = None,
) -> list[dict]:
    """One record per example of ``items`` (``None`` outcome: nothing attackable, left unchanged),
    the final texts checked against ``rules`` (the similarity with ``encoder``) and run in device
    batches of ``batch_size`` rows (the search's, so they share its compiled programs).

    Record keys: ``index, label, original_text, perturbed_text, substitutions, original_probs,
    perturbed_probs, success, skipped, reason, constraint_failed, queries, query_budget_exhausted, gradients, n_words,
    words_changed, clean_prob_true, low_confidence`` (see :func:`report.is_low_confidence`).
    ``probs``: string probabilities already computed (:attr:`FinalTexts.probs`).
    """
    return check_budgets(victim, params, tokenizer, items, [outcomes], [budget], rules, encoder, batch_size, probs)[0]


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
    probs: dict | None = None,
) -> list[list[dict]]:
    """:func:`check` of the outcomes of ``items`` at each of ``budgets`` (one list per budget, as a
    sweep's search gives them): every distinct final text is run through the model, and its
    constraints checked, once; texts in ``probs`` (:attr:`FinalTexts.probs`) already were."""
    if not items:
        return [[] for _ in budgets]
    key = lambda i, o: final_key(i, None if o is None else o.choice)
    finals, subs_of = {}, {}  # by (item, choice)
    for outcomes in outcome_lists:
        for i, (ae, o) in enumerate(zip(items, outcomes)):
            if key(i, o) not in finals:
                finals[key(i, o)] = ae.perturbed_example(o.choice) if o is not None else ae.example
                subs_of[key(i, o)] = ae.substitutions(o.choice) if o is not None else []
    # A text the attack left unchanged keeps its clean probabilities; only texts that were never
    # evaluated (nothing attackable) or were changed go through the model again.
    final_probs = {k: p for k, p in (probs or {}).items() if k in finals}
    rerun = [k for k in finals if (k[1] is None or subs_of[k]) and k not in final_probs]
    if rerun:
        final_probs.update(zip(rerun, string_probs(victim, params, tokenizer, [finals[k] for k in rerun], batch_size)))
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
        perturbed_text=_attacked(final),
        substitutions=[list(s) for s in subs],
        original_probs=[float(x) for x in original_probs],
        perturbed_probs=[float(x) for x in p],
        success=bool(not misclassified and subs and int(np.argmax(p)) != label),
        skipped=bool(reason),
        reason=reason,
        queries=int(o.queries) if o is not None else 1,
        query_budget_exhausted=bool(o is not None and o.exhausted),
        gradients=int(o.gradients) if o is not None else 0,
        n_words=ae.n_words,
        words_changed=len(subs),
        constraint_failed="",
    )
    record.update(clean_prob_true=report.clean_prob_true(record), low_confidence=report.is_low_confidence(record))
    return record


def _attacked(example: Example) -> str:
    """The segment of ``example`` an attack changes (the hypothesis of a pair)."""
    return example.text_b if example.text_b is not None else example.text


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
