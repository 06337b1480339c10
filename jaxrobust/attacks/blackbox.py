"""Black-box word-substitution attacks: TextFooler-style greedy search, PWWS, Alzantot's genetic attack
and BERT-Attack's search (its masked-LM candidates are :mod:`.bert_attack`'s).

The three attacks only query class probabilities. Each works on one :class:`~jaxrobust.attacks.engine.Group`
(the layout of the attacked examples) and returns one :class:`~jaxrobust.attacks.engine.Outcome` per member.

Batching. A search step gathers the candidate texts of *all* still-active examples of the group
into one ``scorer(member [R], choice [R, W])`` call, which runs them in fixed-size device batches
(one compilation per length). Python loops run over search steps only (word positions in
importance order, generations); per-example bookkeeping is NumPy on ``[N, ...]`` arrays, apart from
the genetic attack's random draws, made per example from its own generator. Within one
call, identical (example, choice) rows are scored once, and counted once: ``Outcome.queries`` is the
number of forward passes spent on the example's texts, the clean one included.

Rules every attack obeys, per example: only the slot's own candidates are used; at most
``max_changes(budget)`` slots differ from the original in any text evaluated or returned (a
deletion or UNK probe counts as one change); an example stops as soon as its prediction flips;
examples misclassified on the clean text are never attacked (``skipped``); an example that reaches
the scorer's query budget stops with the best text it has queried. "Best" always means:
a text that flips the prediction before one that does not, then the lowest true-class
probability (for two classes this is simply the lowest true-class probability).

TextFooler-style (Jin et al. 2020; TextAttack's ``GreedyWordSwapWIR(wir_method="delete")``)
    1. importance of slot ``w`` = p_true(clean) − p_true(clean with word ``w`` deleted): one call
       with ``[examples × slots]`` rows;
    2. in decreasing importance, one slot per step: every candidate of the slot on the current
       text (one call with ``[active examples × K]`` rows); the best is kept if it flips the
       prediction or lowers the true-class probability. A slot is visited once, so it changes at
       most once. Stop when flipped, when the budget is spent or when the slots run out.
    Constraints (:mod:`.constraints`): the part-of-speech mask is in the candidates; a candidate text
    failing the sentence similarity is never queried.

PWWS (Ren et al. 2019)
    1. saliency ``s_w`` = p_true(clean) − p_true(clean with word ``w`` replaced by the unknown token);
       best swap gain ``Δp*_w = max_k p_true(clean) − p_true(clean with candidate k at w)``;
       both in one call with ``[examples × (slots + slots·K)]`` rows;
    2. ``score_w = softmax(s)_w · Δp*_w`` (softmax over the example's slots);
    3. slots in decreasing score, greedily as above: the best swap is *re-chosen on the current text*
       (as TextAttack's PWWS does, rather than applying the swap precomputed on the clean text) and
       kept if it flips the prediction or lowers the true-class probability.

Genetic (Alzantot et al. 2018), ``population`` members per example, ``generations`` rounds
    * perturb(x): pick a slot at random, weighted by its number of candidates (as the original
      code does) among the slots not changed yet while the budget allows a new change; once the
      budget is spent (or every slot is changed) among the changed slots, whose replacement keeps the
      count. Put in the candidate of that slot that is best on x (all candidates of all members
      evaluated in one call: ``[active examples × population × K]`` rows). The replacement is
      unconditional, as in the paper; its probabilities become the member's fitness, so no extra
      query is needed.
    * initial population: ``population`` perturbations of the original;
    * each generation: fitness = 1 − p_true; if the best member flips, the example stops; else
      the elite (best member) survives and ``population − 1`` children are bred: two parents
      sampled with probabilities softmax(fitness / 0.3), uniform crossover slot by slot, a child
      with more changes than the budget allows is replaced by its fitter parent, then mutated by
      perturb.
    * after the last generation the best member is returned (flipped or not).
    Randomness: one ``numpy`` Generator per example, seeded with ``(seed, example index)``, so the
    result of an example depends neither on the other examples of its group nor on batch sizes.

Shapes: N members of the group, W slots, K candidates per slot, C classes, R rows of one call,
A active (attacked) examples, P population.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from jaxrobust.attacks.engine import Outcome, Scorer
from jaxrobust.attacks.layout import DELETE, ORIGINAL, UNK

TEMPERATURE = 0.3  # Alzantot et al.'s parent-selection temperature


@dataclasses.dataclass
class _Start:
    """What every attack needs before its search: clean probabilities and per-example limits."""

    p0: np.ndarray  # [N, C] clean class probabilities
    labels: np.ndarray  # [N]
    limit: np.ndarray  # [N] max_changes(budget)
    cand_valid: np.ndarray  # [N, W, K] the slot's own candidates
    attack: np.ndarray  # [N] correctly classified: attacked (the others are skipped)

    @property
    def slot_valid(self) -> np.ndarray:
        """``[N, W]``: slots with at least one candidate."""
        return self.cand_valid.any(-1)


def _start(scorer: Scorer, budget: float) -> _Start:
    lay = scorer.group.layout
    p0 = scorer.clean()
    labels = np.asarray(lay.labels)
    limit = np.array([ae.max_changes(budget) for ae in scorer.group.members], np.int64)
    cand_valid = np.asarray(lay.cand_valid) & np.asarray(lay.slot_valid)[..., None]
    return _Start(p0, labels, limit, cand_valid, p0.argmax(-1) == labels)


def _outcomes(scorer: Scorer, start: _Start, choice: np.ndarray) -> list[Outcome]:
    """One :class:`Outcome` per member; skipped members keep the original text."""
    return [
        Outcome(choice[i].astype(np.int32), start.p0[i], int(scorer.queries[i]), skipped=not start.attack[i], exhausted=bool(scorer.exhausted[i]))
        for i in range(len(start.labels))
    ]


def _true_prob(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``probs [..., C]``, ``labels`` broadcastable to ``[...]`` -> true-class probability ``[...]``."""
    return np.take_along_axis(probs, np.broadcast_to(labels, probs.shape[:-1])[..., None], axis=-1)[..., 0]


def _badness(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Ranking key, lower is better for the attacker: p_true − 2 if the prediction is flipped, else
    p_true; ``+inf`` where ``probs`` is NaN (no such text). ``probs [..., C]`` -> ``[...]``."""
    p_true = _true_prob(np.nan_to_num(probs), labels)
    flipped = np.nan_to_num(probs, nan=-1.0).argmax(-1) != labels
    return np.where(np.isnan(probs).any(-1), np.inf, p_true - 2.0 * flipped)


# Scores from device batches of other sizes differ in their last float32 bits: candidates within this
# of the best are tied, and a tie goes to the first, so that the batch size never changes a choice.
TIE = 1e-6


def _argmin_first(bad: np.ndarray, axis: int = -1) -> np.ndarray:
    """``argmin`` along ``axis`` that gives a near-tie (within :data:`TIE`) to the first index."""
    return np.argmax(bad <= bad.min(axis, keepdims=True) + TIE, axis=axis)


def _score(scorer: Scorer, member: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Probabilities ``[R, C]`` of rows ``member [R]``, ``choice [R, W]``: ONE scorer call, in which
    identical rows (frequent in the genetic attack) are scored, and counted, once."""
    rows = np.concatenate([member[:, None], choice], axis=1).astype(np.int64)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    return scorer(unique[:, 0], unique[:, 1:].astype(np.int32))[inverse.reshape(-1)]


def _probe_slots(scorer: Scorer, start: _Start, members: np.ndarray, value: int) -> np.ndarray:
    """``[A, W]`` true-class probabilities of the clean texts with each valid slot set to ``value``
    (DELETE, UNK); NaN for padding slots. One scorer call."""
    W = start.cand_valid.shape[1]
    a, w = np.nonzero(start.slot_valid[members])
    choice = np.full((len(a), W), ORIGINAL, np.int32)
    choice[np.arange(len(a)), w] = value
    out = np.full((len(members), W), np.nan)
    if len(a):
        out[a, w] = _true_prob(_score(scorer, members[a], choice), start.labels[members[a]])
    return out


def _try_candidates(scorer: Scorer, start: _Start, member: np.ndarray, choice: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Probabilities ``[R, K, C]`` of ``choice [R, W]`` with each candidate of ``slot [R]`` put in,
    all rows in ONE scorer call; NaN where the candidate does not exist, fails the constraints
    (never queried) or ``slot`` is -1."""
    R, W = choice.shape
    K = start.cand_valid.shape[2]
    C = start.p0.shape[1]
    out = np.full((R, K, C), np.nan)
    valid = start.cand_valid[member, np.maximum(slot, 0)] & (slot >= 0)[:, None]  # [R, K]
    r, k = np.nonzero(valid)
    if len(r):
        trial = choice[r].copy()
        trial[np.arange(len(r)), slot[r]] = k
        ok = scorer.allowed(member[r], trial)
        r, k, trial = r[ok], k[ok], trial[ok]
    if len(r):
        out[r, k] = _score(scorer, member[r], trial)
    return out


def _pick_best(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best candidate of each row of ``probs [R, K, C]``: ``(k [R], probs [R, C], badness [R])``."""
    bad = _badness(probs, labels[:, None])
    k = _argmin_first(bad, -1)
    rows = np.arange(len(k))
    return k, probs[rows, k], bad[rows, k]


# ---------------------------------------------------------------------------------------------
# Greedy search (TextFooler, PWWS)


def _order(score: np.ndarray) -> np.ndarray:
    """Slots by decreasing ``score [N, W]`` (NaN = no slot) -> ``[N, W]``, padded with -1."""
    key = np.where(np.isnan(score), -np.inf, score)
    order = np.argsort(-key, axis=1, kind="stable")
    return np.where(np.take_along_axis(np.isnan(score), order, axis=1), -1, order)


def _greedy(scorer: Scorer, start: _Start, order: np.ndarray, on_done: Callable[[int], None]) -> np.ndarray:
    """Greedy word swaps in slot ``order [N, W]`` (-1 = no more slots) -> final ``choice [N, W]``.

    Step ``t`` tries every candidate of slot ``order[:, t]`` on the current text of every active
    example (one scorer call); the best is kept if it flips the prediction or lowers p_true.
    """
    N, W = order.shape
    choice = np.full((N, W), ORIGINAL, np.int32)
    bad = _badness(start.p0, start.labels)  # [N] of the current texts
    changed = np.zeros(N, np.int64)
    active = start.attack & (order[:, 0] >= 0) & ~scorer.exhausted
    on_done(int(N - active.sum()))
    for t in range(W):
        members = np.flatnonzero(active)
        if not len(members):
            break
        slot = order[members, t]
        probs = _try_candidates(scorer, start, members, choice[members], slot)
        k, _, best_bad = _pick_best(probs, start.labels[members])
        accept = best_bad < bad[members]
        m, s = members[accept], slot[accept]
        choice[m, s] = k[accept]
        bad[m] = best_bad[accept]
        changed[m] += 1
        flipped = bad < -0.5  # badness is p_true - 2 < 0 exactly when flipped
        more = order[:, t + 1] >= 0 if t + 1 < W else np.zeros(N, bool)
        still = active & ~flipped & (changed < start.limit) & more & ~scorer.exhausted
        on_done(int(active.sum() - still.sum()))
        active = still
    return choice


def textfooler_group(scorer: Scorer, budget: float, *, on_done: Callable[[int], None] = lambda n: None) -> list[Outcome]:
    """TextFooler-style attack (deletion importance, greedy best swap) on every member of ``scorer.group``."""
    start = _start(scorer, budget)
    members = np.flatnonzero(start.attack)
    importance = np.full(start.slot_valid.shape, np.nan)
    importance[members] = _true_prob(start.p0[members], start.labels[members])[:, None] - _probe_slots(
        scorer, start, members, DELETE
    )
    choice = _greedy(scorer, start, _order(importance), on_done)
    return _outcomes(scorer, start, choice)


def bertattack_group(scorer: Scorer, budget: float, *, on_done: Callable[[int], None] = lambda n: None) -> list[Outcome]:
    """BERT-Attack's search (Li et al. 2020, :mod:`.bert_attack` for its candidates): importance of a
    word = p_true(clean) − p_true(clean with the word replaced by the unknown token), then greedy
    best swaps as TextFooler's."""
    start = _start(scorer, budget)
    members = np.flatnonzero(start.attack)
    importance = np.full(start.slot_valid.shape, np.nan)
    importance[members] = _true_prob(start.p0[members], start.labels[members])[:, None] - _probe_slots(scorer, start, members, UNK)
    choice = _greedy(scorer, start, _order(importance), on_done)
    return _outcomes(scorer, start, choice)


def _pwws_scores(scorer: Scorer, start: _Start, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PWWS scores ``softmax(saliency) · Δp*`` ``[A, W]`` of ``members`` (NaN for padding slots), and
    the best clean-text swap ``[A, W]`` of the examples where one flips the prediction (else all
    ORIGINAL). The UNK probes and the clean-text swaps go through the scorer together (one call)."""
    A, W, K = start.cand_valid[members].shape
    a, w = np.nonzero(start.slot_valid[members])
    unk = np.full((len(a), W), ORIGINAL, np.int32)
    unk[np.arange(len(a)), w] = UNK
    sa, sw, sk = np.nonzero(start.cand_valid[members])
    swap = np.full((len(sa), W), ORIGINAL, np.int32)
    swap[np.arange(len(sa)), sw] = sk
    ok = scorer.allowed(members[sa], swap)  # a swap that fails the constraints is never queried
    sa, sw, sk, swap = sa[ok], sw[ok], sk[ok], swap[ok]
    rows = np.concatenate([members[a], members[sa]])
    probs = _score(scorer, rows, np.concatenate([unk, swap]))
    clean = _true_prob(start.p0[members], start.labels[members])  # [A]
    saliency = np.full((A, W), -np.inf)
    saliency[a, w] = clean[a] - _true_prob(probs[: len(a)], start.labels[rows[: len(a)]])
    swap_probs = np.full((A, W, K, probs.shape[1]), np.nan)
    swap_probs[sa, sw, sk] = probs[len(a) :]
    drop = clean[:, None, None] - _true_prob(swap_probs, start.labels[members, None, None])  # [A, W, K]
    gain = np.where(np.isnan(drop), -np.inf, drop).max(2)  # Δp* over the queried swaps
    weight = np.exp(saliency - saliency.max(1, keepdims=True))  # softmax over the example's slots
    weight /= weight.sum(1, keepdims=True)
    valid = start.slot_valid[members]
    score = np.where(valid, weight * np.where(valid, gain, 0.0), np.nan)
    # A clean-text swap that already flips the prediction ends the search (the best flipping one).
    bad = _badness(swap_probs, start.labels[members, None, None]).reshape(A, W * K)
    best = _argmin_first(bad, 1)
    flips = np.flatnonzero(bad[np.arange(A), best] < -0.5)
    found = np.full((A, W), ORIGINAL, np.int32)
    found[flips, best[flips] // K] = best[flips] % K
    return score, found


def pwws_group(scorer: Scorer, budget: float, *, on_done: Callable[[int], None] = lambda n: None) -> list[Outcome]:
    """PWWS (saliency-weighted swap gains, then greedy swaps re-chosen on the current text)."""
    start = _start(scorer, budget)
    members = np.flatnonzero(start.attack & start.slot_valid.any(1))
    score = np.full(start.slot_valid.shape, np.nan)
    found = np.full(start.slot_valid.shape, ORIGINAL, np.int32)
    if len(members):
        score[members], found[members] = _pwws_scores(scorer, start, members)
    done = (found != ORIGINAL).any(1)
    score[done] = np.nan  # already adversarial: no greedy search
    choice = _greedy(scorer, start, _order(score), on_done)
    choice[done] = found[done]
    return _outcomes(scorer, start, choice)


# ---------------------------------------------------------------------------------------------
# Genetic search (Alzantot et al. 2018)


def _perturb(scorer: Scorer, start: _Start, member: np.ndarray, choice: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mutate each row: one slot, drawn with uniform numbers ``u [R]``, gets its best candidate.

    ``member [R]``, ``choice [R, W]`` -> ``(choice [R, W], probs [R, C])``; one scorer call. The slot
    is drawn weighted by its candidate count among the unchanged slots while a new change fits the
    budget, else among the changed ones (re-substituting keeps the number of changes).
    """
    n_cand = start.cand_valid[member].sum(-1)  # [R, W]
    is_changed = choice != ORIGINAL
    fresh = (n_cand > 0) & ~is_changed
    may_grow = (is_changed.sum(1) < start.limit[member]) & fresh.any(1)
    pool = np.where(may_grow[:, None], fresh, (n_cand > 0) & is_changed)
    weight = np.where(pool, n_cand, 0).astype(np.float64)
    total = weight.sum(1)
    cum = np.cumsum(weight, axis=1)
    slot = (cum <= (u * total)[:, None]).sum(1)  # inverse-CDF draw; a zero weight is never picked
    slot = np.where(total > 0, np.minimum(slot, choice.shape[1] - 1), -1)
    probs = _try_candidates(scorer, start, member, choice, slot)
    k, best, bad = _pick_best(probs, start.labels[member])
    out = choice.copy()
    rows = np.flatnonzero((slot >= 0) & np.isfinite(bad))
    out[rows, slot[rows]] = k[rows]
    # No slot to mutate (cannot happen for attackable examples), or every candidate of the drawn
    # slot fails the constraints: the row stays as it was.
    stuck = np.flatnonzero((slot < 0) | ~np.isfinite(bad))
    if len(stuck):
        best[stuck] = _score(scorer, member[stuck], out[stuck])
    return out, best


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _breed(pop: np.ndarray, fitness: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Children of one example: ``pop [P, W]``, ``fitness [P]`` -> ``(children [P-1, W], u [P-1],
    fitter [P-1, W])``, ``u`` the uniform numbers of their mutations, ``fitter`` each child's fitter
    parent (what replaces a child over the budget, or one failing the constraints). Draw order is
    fixed, for reproducibility."""
    P, W = pop.shape
    select = _softmax(fitness / TEMPERATURE)
    p1 = rng.choice(P, size=P - 1, p=select)
    p2 = rng.choice(P, size=P - 1, p=select)
    take_first = rng.random((P - 1, W)) < 0.5
    u = rng.random(P - 1)
    children = np.where(take_first, pop[p1], pop[p2])
    over = (children != ORIGINAL).sum(1) > limit
    fitter = np.where(fitness[p1] >= fitness[p2], p1, p2)
    children[over] = pop[fitter[over]]
    return children, u, pop[fitter]


def genetic_group(
    scorer: Scorer,
    budget: float,
    *,
    population: int = 60,
    generations: int = 20,
    seed: int = 0,
    on_done: Callable[[int], None] = lambda n: None,
) -> list[Outcome]:
    """Alzantot et al.'s genetic attack on every member of ``scorer.group`` (see the module docstring)."""
    start = _start(scorer, budget)
    N, W = start.slot_valid.shape
    P = population
    members = np.flatnonzero(start.attack)
    choice = np.full((N, W), ORIGINAL, np.int32)
    on_done(int(N - len(members)))
    if not len(members):
        return _outcomes(scorer, start, choice)
    rngs = [np.random.default_rng([seed, scorer.group.members[i].index]) for i in members]
    labels = start.labels[members]

    row_member = np.repeat(members, P)
    u = np.concatenate([rng.random(P) for rng in rngs])
    pop, probs = _perturb(scorer, start, row_member, np.full((len(row_member), W), ORIGINAL, np.int32), u)
    pop, probs = pop.reshape(len(members), P, W), probs.reshape(len(members), P, -1)

    active = np.ones(len(members), bool)
    for generation in range(generations + 1):
        bad = _badness(probs, labels[:, None])  # [A, P]
        best = _argmin_first(bad, 1)
        stop = (bad[np.arange(len(members)), best] < -0.5) | (generation == generations) | scorer.exhausted[members]
        ends = active & stop
        choice[members[ends]] = pop[ends, best[ends]]
        on_done(int(ends.sum()))
        active &= ~ends
        if not active.any():
            break
        live = np.flatnonzero(active)
        fitness = 1.0 - _true_prob(probs[live], labels[live, None])  # [A', P]
        bred = [_breed(pop[a], fitness[j], int(start.limit[members[a]]), rngs[a]) for j, a in enumerate(live)]
        children = np.concatenate([c for c, _, _ in bred])
        child_u = np.concatenate([cu for _, cu, _ in bred])
        child_member = np.repeat(members[live], P - 1)
        fails = ~scorer.allowed(child_member, children)  # crossover may join changes that fail together
        children[fails] = np.concatenate([f for _, _, f in bred])[fails]
        children, child_probs = _perturb(scorer, start, child_member, children, child_u)
        elite = best[live]
        pop[live] = np.concatenate([pop[live, elite][:, None], children.reshape(len(live), P - 1, W)], axis=1)
        probs[live] = np.concatenate([probs[live, elite][:, None], child_probs.reshape(len(live), P - 1, -1)], axis=1)
    return _outcomes(scorer, start, choice)


ATTACKS = {"textfooler": textfooler_group, "pwws": pwws_group, "genetic": genetic_group, "bertattack": bertattack_group}
