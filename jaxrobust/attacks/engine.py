"""Running attacks over many examples: one padded layout, a batched scorer, continuous batching.

All attackable examples share one :class:`Group`: one layout with common slot (W), candidate (K)
and segment axes, sorted by the token length each example may reach. The token length of a device
batch is the largest among its rows, rounded up to a multiple of 8, so short texts are not padded to
the longest one and the compiled programs are one per length step (at most ``max_length / 8``).

* Black-box attacks send every candidate text of a search step, for all examples at once, through
  :class:`Scorer`, which cuts the rows (sorted by length) into fixed-size device batches.
* The gradient attack runs as a pool of ``batch_size`` rows (continuous batching): after every
  jitted step, rows whose example is finished are refilled with the next example, shortest first,
  so the device computes on finished examples only during the last few steps.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.attacks import gradient
from jaxrobust.attacks.layout import ORIGINAL, AttackExample, Layout, make_layout, padded_length
from jaxrobust.attacks.victim import Victim, build_batch, probs

LENGTH_STEP = 8  # padded lengths are multiples of 8 tokens
SLOT_STEP = 8


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


@dataclasses.dataclass
class Group:
    """Attackable examples in one layout, shortest first."""

    members: list[AttackExample]
    layout: Layout  # NumPy arrays, one row per member
    lengths: np.ndarray  # [N] padded token length of each member (a multiple of LENGTH_STEP)

    def length_of(self, rows: np.ndarray) -> int:
        """Token length of a device batch holding the members ``rows``."""
        return int(self.lengths[rows].max())


def make_group(tokenizer, items: Sequence[AttackExample], budget: float, max_length: int, num_candidates: int) -> Group:
    """Lay out attackable ``items`` (room for the budget's growth included), shortest first."""
    cap = _round_up(max_length, LENGTH_STEP)
    lengths = [min(_round_up(padded_length(ae, budget, max_length), LENGTH_STEP), cap) for ae in items]
    order = np.argsort(lengths, kind="stable")
    members = [items[i] for i in order]
    slots = _round_up(max(len(ae.slot_words) for ae in members), SLOT_STEP)
    lay = make_layout(tokenizer, members, num_slots=slots, num_candidates=num_candidates)
    return Group(members, lay, np.asarray(lengths, np.int64)[order])


@functools.partial(jax.jit, static_argnames=("victim", "length"))
def _probs_of(victim: Victim, params, lay: Layout, choice: jax.Array, *, length: int) -> jax.Array:
    return probs(victim, params, build_batch(victim, lay, choice, length))


class Scorer:
    """Class probabilities of (member, choice) rows of a group, in device batches of ``chunk`` rows."""

    def __init__(self, victim: Victim, params, group: Group, chunk: int = 64):
        self.victim, self.params, self.group, self.chunk = victim, params, group, chunk
        self.queries = np.zeros(len(group.members), np.int64)  # forward passes per member

    def __call__(self, member: np.ndarray, choice: np.ndarray) -> np.ndarray:
        """``member [R]`` (rows of the group), ``choice [R, W]`` -> probabilities ``[R, C]``."""
        member = np.asarray(member, np.int64)
        order = np.argsort(self.group.lengths[member], kind="stable")  # similar lengths share a batch
        parts = []
        for start in range(0, len(member), self.chunk):
            rows = order[start : start + self.chunk]
            idx, ch = member[rows], choice[rows]
            # Batch sizes are the chunk or a power of two (>= 8) below it: a few compilations per
            # length, and a short last batch is not padded to a full chunk.
            size = min(self.chunk, max(8, 1 << (len(idx) - 1).bit_length()))
            pad = size - len(idx)
            if pad:
                idx = np.concatenate([idx, np.repeat(idx[:1], pad)])
                ch = np.concatenate([ch, np.repeat(ch[:1], pad, axis=0)])
            lay = self.group.layout.rows(idx)
            p = _probs_of(self.victim, self.params, lay, jnp.asarray(ch), length=self.group.length_of(idx))
            parts.append(np.asarray(p)[: len(rows)])
        np.add.at(self.queries, member, 1)
        if not parts:
            return np.zeros((0, 0), np.float32)  # no rows asked: nothing to score
        out = np.empty((len(member), parts[0].shape[1]), np.float32)
        out[order] = np.concatenate(parts)
        return out

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


_step = jax.jit(gradient.attack_step, static_argnames=("victim", "length", "verify"))
_finished = jax.jit(gradient.finished)


def run_gradient_group(
    victim: Victim,
    params,
    group: Group,
    budget: float,
    *,
    batch_size: int,
    verify: int,
    max_iters: int,
    on_done: Callable[[int], None] = lambda n: None,
) -> list[Outcome]:
    """The gradient attack on every member of ``group`` with continuous batching (module docstring)."""
    scorer = Scorer(victim, params, group, chunk=batch_size)
    p0 = scorer.clean()
    full = group.layout
    todo = [i for i in range(len(group.members)) if p0[i].argmax() == full.labels[i]]
    attacked = set(todo)
    outcomes = {
        i: Outcome(np.full(full.slot_seg.shape[1], ORIGINAL, np.int32), p0[i], 1, skipped=True)
        for i in range(len(group.members))
        if i not in attacked
    }
    on_done(len(outcomes))
    if not todo:
        return [outcomes[i] for i in range(len(group.members))]
    B = min(batch_size, len(todo))
    budget_arr = jnp.float32(budget)
    pool = np.array(todo[:B])  # member of each row; -1 = empty
    queue = todo[B:]
    lay = full.rows(pool)
    state = jax.tree.map(np.asarray, gradient.initial_state(lay, p0[pool]))
    iters = np.zeros(B, np.int64)
    while (pool >= 0).any():
        length = group.length_of(pool[pool >= 0])
        state = jax.tree.map(np.array, _step(victim, params, lay, budget_arr, state, length=length, verify=verify))
        iters += 1
        done = np.asarray(_finished(lay, state, budget_arr)) | (iters >= max_iters)
        for row in np.flatnonzero(done & (pool >= 0)):
            i = int(pool[row])
            outcomes[i] = Outcome(state["choice"][row].copy(), p0[i], int(state["queries"][row]), int(state["gradients"][row]))
            on_done(1)
            if queue:
                pool[row] = queue.pop(0)
                fresh = gradient.initial_state(full.rows(pool[row : row + 1]), p0[pool[row : row + 1]])
                for key in state:
                    state[key][row] = np.asarray(fresh[key])[0]
                jax.tree.map(lambda a, b: a.__setitem__(row, b[pool[row]]), lay, full)
                iters[row] = 0
            else:
                pool[row] = -1
                state["done"][row] = True  # an empty row: nothing allowed, costs no decisions
    return [outcomes[i] for i in range(len(group.members))]
