"""Running attacks over many examples: one padded layout and a batched scorer.

All attackable examples share one :class:`Group`: one layout with common slot (W), candidate (K)
and segment axes. Every model evaluation goes through :class:`Scorer`, which computes the exact
token length of each requested text (its substitutions applied) before building it and evaluates
texts of one length bucket together (:mod:`.shapes`): short texts and deletions are not padded to
the longest text, and a text's padding never depends on what is asked with it. Building the tokens
is a cheap program of the layout; the model runs in programs keyed by (rows, length) only, the
same ones the string-level check and the next attack use.

* Black-box attacks send every candidate text of a search step, for all examples at once, to the
  scorer.
* The gradient attack (:func:`run_gradient_budgets`) ranks the pairs of all examples with one
  batched gradient pass, then sends the trials of every unfinished example of an iteration at
  once; its bookkeeping between device batches runs in NumPy. One search records its outcome at
  several budgets (the sweep).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import numpy as np

from jaxrobust.attacks import gradient, shapes
from jaxrobust.attacks.layout import ORIGINAL, AttackExample, Layout, longest_length, make_layout, max_changes, padded_length, token_lengths
from jaxrobust.attacks.victim import Victim, build_batch, model_inputs, predict, predict_grad, word_embeddings

SLOT_STEP = 8


@dataclasses.dataclass
class Group:
    """Attackable examples in one layout, shortest first."""

    members: list[AttackExample]
    layout: Layout  # NumPy arrays, one row per member


def make_group(tokenizer, items: Sequence[AttackExample], budget: float, max_length: int, num_candidates: int) -> Group:
    """Lay out attackable ``items``, shortest first (by the length each may reach within ``budget``)."""
    order = np.argsort([padded_length(ae, budget, max_length) for ae in items], kind="stable")
    members = [items[i] for i in order]
    slots = shapes.round_up(max(len(ae.slot_words) for ae in members), SLOT_STEP)
    return Group(members, make_layout(tokenizer, members, num_slots=slots, num_candidates=num_candidates))


# The layout's program: cheap to compile, one per batch size and layout shape.
_tokens_of = jax.jit(build_batch, static_argnames=("victim", "length"))


@functools.partial(jax.jit, static_argnames="depth")
def _ranking_of(table: jax.Array, lay: Layout, slot_grad: jax.Array, *, depth: int):
    return gradient.top_pairs(lay, gradient.gains_from_grad(table, lay, slot_grad), depth)


class Scorer:
    """Model evaluations of (member, choice) rows of a group, in device batches of at most ``chunk``
    rows of one length step (module docstring): a deletion or a shorter candidate also makes a
    shorter query. ``allowed(member, choice) -> [R] bool`` is the search's constraint check
    (:class:`~jaxrobust.attacks.constraints.SimilarityFilter`); without one every text passes.
    ``finals`` (:class:`~jaxrobust.attacks.verify.FinalTexts`): settled final texts that ride in the
    free rows of its batches.

    ``query_budget``: model evaluations allowed per member (a query is one evaluation of one text;
    the gradient pass of :meth:`rank` counts as one). Of a request, each member's rows beyond what is
    left of its budget are not evaluated: their probabilities are NaN (the attacks' "not queried")
    and the member is marked ``exhausted``, which ends its search."""

    def __init__(self, victim: Victim, params, group: Group, chunk: int = shapes.ROWS, allowed=None, finals=None,
                 query_budget: int | None = None):
        self.victim, self.params, self.group, self.chunk = victim, params, group, chunk
        self._allowed, self.finals, self.query_budget = allowed, finals, query_budget
        self.exhausted = np.zeros(len(group.members), bool)  # a request went past the member's query budget
        self.classes = 0  # C, known from the first evaluation (the clean texts or the gradient pass)
        # The coarse bucket: at least the fine one (its ladder is a subset), so it serves both.
        self._longest = int(shapes.bucket(longest_length(group.layout, victim.max_length), victim.max_length, coarse=True))
        self.queries = np.zeros(len(group.members), np.int64)  # forward passes per member
        self.gradients = np.zeros(len(group.members), np.int64)  # forward + backward passes per member

    def allowed(self, member: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """``[R]``: which trial texts the attack's constraints let it query."""
        if self._allowed is None:
            return np.ones(len(member), bool)
        return self._allowed(np.asarray(member, np.int64), choice)

    def batches(self, member: np.ndarray, choice: np.ndarray, coarse: bool = False):
        """``(rows, layout, choice, length)`` per device batch (:func:`.shapes.length_batches`; ``coarse``:
        the gradient pass's lengths); ``rows`` index the request."""
        lengths = token_lengths(self.group.layout.rows(member), choice, self.victim.max_length)
        for rows, padded, length in shapes.length_batches(lengths, self.chunk, self.victim.max_length, coarse):
            yield rows, self.group.layout.rows(member[padded]), choice[padded], length

    def _tokens(self, lay: Layout, choice: np.ndarray, length: int) -> dict:
        """Host token arrays ``[chunk, length]`` (built at the group's longest bucket: one program)."""
        return shapes.fit(_tokens_of(self.victim, lay, choice, length=self._longest), length)

    def within_budget(self, member: np.ndarray) -> np.ndarray:
        """``[R]``: the rows of a request that fit their member's query budget, in request order;
        marks the members with rows beyond it as exhausted."""
        if self.query_budget is None:
            return np.ones(len(member), bool)
        order = np.argsort(member, kind="stable")
        starts = np.flatnonzero(np.r_[True, member[order][1:] != member[order][:-1]])
        rank = np.arange(len(member)) - np.repeat(starts, np.diff(np.r_[starts, len(member)]))  # row's place among its member's
        fits = np.empty(len(member), bool)
        fits[order] = rank < (self.query_budget - self.queries[member[order]])
        self.exhausted[member[~fits]] = True
        return fits

    def __call__(self, member: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """``member [R]`` (rows of the group), ``choice [R, W]`` -> probabilities ``[R, C]`` (NaN for rows
        beyond the query budget)."""
        member = np.asarray(member, np.int64)
        fits = self.within_budget(member)
        if fits.all():
            return self._evaluate(member, choice)
        out = np.full((len(member), self.classes), np.nan, np.float32)
        if fits.any():
            out[fits] = self._evaluate(member[fits], choice[fits])
        return out

    def _evaluate(self, member: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """The model's probabilities ``[R, C]`` of every requested row, counted as queries."""
        out = np.zeros((len(member), 0), np.float32)  # no rows asked: nothing to score
        for rows, lay, ch, length in self.batches(member, choice):
            tokens, riders = model_inputs(self._tokens(lay, ch, length)), []
            if self.finals is not None:
                tokens, riders = self.finals.rows.fill(tokens, len(rows))
            p = np.asarray(predict(self.victim, self.params, tokens))
            if riders:
                self.finals.store(riders, p[len(rows) : len(rows) + len(riders)])
            out = out if out.shape[1] else np.zeros((len(member), p.shape[1]), np.float32)
            out[rows] = p[: len(rows)]
            self.classes = p.shape[1]
        np.add.at(self.queries, member, 1)
        return out

    def rank(self, member: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`gradient.rank_pairs` of the clean texts of ``member [R]`` (one gradient pass each, one
        query): probabilities ``[R, C]``, gains ``[R, depth]``, flat pair indices ``[R, depth]``."""
        member = np.asarray(member, np.int64)
        clean = np.full((len(member), self.group.layout.slot_seg.shape[1]), ORIGINAL, np.int32)
        table = word_embeddings(self.victim, self.params)
        parts = []
        for rows, lay, ch, length in self.batches(member, clean, coarse=True):
            tokens = self._tokens(lay, ch, length)
            p, grad = predict_grad(self.victim, self.params, model_inputs(tokens), lay.labels)
            slot_grad = gradient.slot_gradients(tokens["token_slot"], np.asarray(grad), lay.slot_seg.shape[1])
            parts.append((rows, (p, *_ranking_of(table, lay, slot_grad, depth=depth))))
        out = [np.zeros((len(member),) + a.shape[1:], a.dtype) for a in parts[0][1]]
        self.classes = out[0].shape[1]
        for rows, arrays in parts:
            for o, a in zip(out, arrays):
                o[rows] = np.asarray(a)[: len(rows)]
        np.add.at(self.gradients, member, 1)
        np.add.at(self.queries, member, 1)  # the pass evaluates the clean text
        return tuple(out)

    def clean(self) -> np.ndarray:
        """``[N, C]`` probabilities of every member's original text."""
        n, w = self.group.layout.slot_seg.shape
        return self(np.arange(n), np.full((n, w), ORIGINAL, np.int32))


@dataclasses.dataclass
class Outcome:
    """What an attack did to one example (before the string-level check)."""

    choice: np.ndarray  # [W] slot choices
    orig_probs: np.ndarray  # [C] on the clean text
    queries: int  # forward passes on texts of this example
    gradients: int = 0  # forward+backward passes
    skipped: bool = False  # misclassified before the attack
    exhausted: bool = False  # its search reached the query budget


def run_gradient_group(victim: Victim, params, group: Group, budget: float, **kwargs) -> list[Outcome]:
    """The gradient attack on every member of ``group`` at one ``budget``: :func:`run_gradient_budgets`."""
    return run_gradient_budgets(victim, params, group, [budget], **kwargs)[0]


def run_gradient_budgets(
    victim: Victim,
    params,
    group: Group,
    budgets: Sequence[float],
    *,
    batch_size: int,
    verify: int,
    max_iters: int,
    chunk: int = 3,
    allowed=None,
    finals=None,
    query_budget: int | None = None,
    on_done: Callable[[int], None] = lambda n: None,
) -> list[list[Outcome]]:
    """The gradient attack (:mod:`~jaxrobust.attacks.gradient`) on every member of ``group``, at
    every one of ``budgets``: one outcome list per budget.

    The iterations of :mod:`~jaxrobust.attacks.gradient`: each verifies the next ``verify`` pairs of
    every unfinished example, ``chunk`` at a time, and an example whose prediction flipped in one
    chunk verifies no more (it keeps the best flip so far). All examples' trials share device
    batches, each as long as its longest row. A trial that fails the constraints (``allowed``, see
    :class:`Scorer`) counts as verified but is never queried.

    One search serves every budget: the budget only stops an example (when it has changed
    ``max_changes(budget)`` words), never changes what it tries, so the search at the largest budget
    passes through the state where each smaller budget's search stops. That state (choice and
    queries so far) is recorded per budget; the outcomes equal separate searches at each budget.
    Each recorded text is handed to ``finals`` (see :class:`Scorer`) as soon as it is.
    An example whose trials reach ``query_budget`` (see :class:`Scorer`) stops where it is.
    """
    scorer = Scorer(victim, params, group, chunk=batch_size, allowed=allowed, finals=finals, query_budget=query_budget)
    lay = group.layout
    N, W, K = lay.cand_len.shape
    labels = lay.labels
    limits = np.stack([max_changes(lay.n_words, b) for b in budgets])  # [Bu, N] words each budget may change
    recorded = np.zeros((len(budgets), N), bool)
    final_choice = np.zeros((len(budgets), N, W), np.int32)
    final_queries = np.zeros((len(budgets), N), np.int64)
    final_exhausted = np.zeros((len(budgets), N), bool)

    def record(active: np.ndarray) -> None:
        """Freeze, per budget, the rows whose search at that budget stops here."""
        for b, limit in enumerate(limits):
            stop = ~recorded[b] & ~(active & (state["changed"] < limit))
            final_choice[b, stop], final_queries[b, stop] = state["choice"][stop], scorer.queries[stop]
            final_exhausted[b, stop] = scorer.exhausted[stop]
            recorded[b] |= stop
            if finals is not None:
                finals.settle(np.flatnonzero(stop), final_choice[b, stop])

    depth = gradient.ranking_depth(lay.cand_len.shape, verify, max_iters)
    ranking = scorer.rank(np.arange(N), depth)
    p0, _, pairs = ranking
    state = gradient.initial_state(p0, labels, W, depth)
    finished = np.zeros(N, bool)
    for _ in range(max_iters):
        active, open_ = gradient.active_rows(lay, ranking, state, max(budgets))
        active &= ~scorer.exhausted
        open_ &= active[:, None]
        record(active)
        on_done(int((~active & ~finished).sum()))
        finished |= ~active
        rows = np.flatnonzero(active)
        if not len(rows):
            break
        pos, real = gradient.next_pairs(open_[rows], min(verify, depth))
        pair = np.take_along_axis(pairs[rows], pos, axis=1)
        slot, cand = pair // K, pair % K
        state["tried"][rows[:, None], pos] |= real
        best_key = np.full(len(rows), np.inf)  # < 0 once a trial flipped the prediction
        best_j = np.zeros(len(rows), np.int64)
        best_p = np.zeros((len(rows), p0.shape[1]), np.float32)
        for start in range(0, real.shape[1], chunk):
            r, j = np.nonzero(real[:, start : start + chunk] & (best_key >= 0)[:, None])
            if not len(r):
                break
            j = j + start
            trial = state["choice"][rows[r]]
            trial[np.arange(len(r)), slot[r, j]] = cand[r, j]
            ok = scorer.allowed(rows[r], trial)
            r, j, trial = r[ok], j[ok], trial[ok]
            if not len(r):
                continue
            p = scorer(rows[r], trial)
            key = np.nan_to_num(gradient.selection_key(p, labels[rows[r]]), nan=np.inf)  # NaN: past the query budget
            by_row = np.lexsort((j, key, r))  # per row: lowest key first, ties to the better rank
            first = by_row[np.r_[True, r[by_row][1:] != r[by_row][:-1]]]
            better = first[key[first] < best_key[r[first]]]
            best_key[r[better]], best_j[r[better]], best_p[r[better]] = key[better], j[better], p[better]
        accept = best_key < state["true_p"][rows]  # it flips, or lowers the true class
        acc, j = rows[accept], best_j[accept]
        state["choice"][acc, slot[accept, j]] = cand[accept, j]
        state["true_p"][acc] = best_p[accept, labels[acc]]
        state["changed"][acc] += 1
        state["done"][acc] |= best_p[accept].argmax(-1) != labels[acc]
    record(np.zeros(N, bool))  # max_iters reached: every search stops here
    on_done(int((~finished).sum()))
    skipped = p0.argmax(-1) != labels
    return [
        [Outcome(choice[i], p0[i], int(queries[i]), int(scorer.gradients[i]), bool(skipped[i]), bool(exhausted[i])) for i in range(N)]
        for choice, queries, exhausted in zip(final_choice, final_queries, final_exhausted)
    ]
