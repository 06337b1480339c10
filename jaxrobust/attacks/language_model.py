"""The language-model filter of the genetic attack (Alzantot et al. 2018, as Jia et al. 2019 fix it).

A candidate ``x̃_i`` of word ``x_i`` is kept only if a causal language model finds the text around it
about as likely as the original's: with ``window`` words around the word (TextAttack's
``text_window_around_index``, here :func:`~.constraints.window_bounds`), the window's
log-probability may drop by at most ``max_drop`` nats. Jia et al. compute the allowed set once, on
the original text (``W = 6``, ``δ = 5``; RIFT's evaluation uses their code), rather than against each
current perturbation as Alzantot et al. did: the candidates of every slot are filtered before the
search, like the part-of-speech mask, and the search never sees the others.

A window's log-probability is the sum over its tokens of ``log p(token | the tokens before it)``,
the first token conditioned on the model's start token (bos, or eos for a tokenizer without one).
Costs one LM pass per distinct window: the original's and one per candidate of every slot, batched by
length on device (:mod:`.shapes`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Sequence

import numpy as np

from jaxrobust.attacks import shapes
from jaxrobust.errors import JaxRobustError

if TYPE_CHECKING:
    from jaxrobust.attacks.layout import AttackExample

# The CLI reads the defaults below for its help: this module imports nothing heavy (JAX, the
# models) before it is used, so that Ctrl-C during the CLI's start is handled (:mod:`jaxrobust.interrupt`).

DEFAULT_LM = "bundle:smollm2-135m"
WINDOW = 6  # Jia et al.'s W
MAX_DROP = 5.0  # Jia et al.'s δ, the -5 of RIFT's evaluation


@functools.cache
def _token_logprobs():
    """The jitted ``(model, ids, mask [B, L]) -> [B]``: for right-padded rows whose first token is the
    start token, the sum over the real tokens after it of ``log p(ids_t | ids_<t)``. (Built on first
    use: the CLI imports this module for its defaults, without JAX.)"""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    @nnx.jit
    def logprobs(model, ids, mask):
        out = model(ids, mask)
        logp = jax.nn.log_softmax(model.lm_logits(out.last_hidden_state)[:, :-1].astype(jnp.float32), axis=-1)
        picked = jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
        return (picked * mask[:, 1:]).sum(-1)

    return logprobs


class LanguageModel:
    """A causal LM (``ref``: a Hugging Face folder, ``bundle:ID`` or hub id) scoring texts."""

    def __init__(self, ref: str = DEFAULT_LM, *, batch_size: int = shapes.ROWS, max_length: int = 64):
        from jaxrobust.models import load_classifier

        loaded = load_classifier(ref, lm_head=True, random_head=False)
        if not hasattr(loaded.model, "lm_logits"):
            raise JaxRobustError(f"{ref} is not a causal language model (model_type={loaded.config.model_type})")
        self.ref, self.model, self.tokenizer = ref, loaded.model, loaded.tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        if start is None:
            raise JaxRobustError(f"the tokenizer of {ref} has neither a bos nor an eos token to start a text with")
        self.start = int(start)
        self._scores: dict[str, float] = {}

    def _ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.max_length - 1]
        return [self.start, *ids]

    def logprobs(self, texts: Sequence[str]) -> np.ndarray:
        """``[N]`` log-probability of each text (float64); each distinct text is scored once."""
        new = [t for t in dict.fromkeys(texts) if t not in self._scores]
        ids = [self._ids(t) for t in new]
        for rows, padded, length in shapes.length_batches([len(i) for i in ids], self.batch_size, self.max_length):
            tokens = np.zeros((len(padded), length), np.int32)
            mask = np.zeros((len(padded), length), np.int32)
            for j, r in enumerate(padded):
                tokens[j, : len(ids[r])], mask[j, : len(ids[r])] = ids[r], 1
            got = np.asarray(_token_logprobs()(self.model, tokens, mask), np.float64)
            self._scores.update((new[r], float(s)) for r, s in zip(rows, got))
        return np.array([self._scores[t] for t in texts], np.float64)


@dataclasses.dataclass
class FilterStats:
    """What the filter did to the candidates of the attacked examples."""

    candidates: int = 0  # (slot, candidate) pairs looked at
    rejected: int = 0
    drops: list[float] = dataclasses.field(default_factory=list)  # window log-probability drop of each kept candidate

    def summary(self, lm: LanguageModel, window: int = WINDOW, max_drop: float = MAX_DROP) -> dict:
        return {
            "lm": lm.ref, "window": window, "max_drop": max_drop, "candidates": self.candidates,
            "rejected_share": self.rejected / self.candidates if self.candidates else None,
            "kept_mean_drop": float(np.mean(self.drops)) if self.drops else None,
        }


def filter_candidates(lm: LanguageModel, items: Sequence[AttackExample], window: int = WINDOW, max_drop: float = MAX_DROP,
                      stats: FilterStats | None = None) -> list[AttackExample]:
    """``items`` with only the candidates whose window log-probability drops by less than ``max_drop``
    (TextAttack's ``LanguageModelConstraint``: a drop of ``max_drop`` or more fails); a slot left
    without candidates is no longer a slot. ``stats`` (if given) is updated."""
    from jaxrobust.attacks.constraints import window_bounds, window_text

    stats = stats if stats is not None else FilterStats()
    pairs = []  # (item, slot, candidate, original window, substituted window)
    for n, ae in enumerate(items):
        text, spans = ae.text, ae.encoded.words
        bounds = window_bounds([text[s:e] for s, e in spans], window)
        for slot, w in enumerate(ae.slot_words):
            lo, hi = bounds[w]  # the window holds word w
            (start, _), (s, e), (_, end) = spans[lo], spans[w], spans[hi - 1]
            for c, candidate in enumerate(ae.candidates[slot]):
                swapped = text[start:s] + candidate + text[e:end]  # candidates carry the word's case
                pairs.append((n, slot, c, window_text(text, spans, lo, hi), swapped))
    if not pairs:
        return list(items)
    drop = lm.logprobs([p[3] for p in pairs]) - lm.logprobs([p[4] for p in pairs])
    keep = {(n, slot, c) for (n, slot, c, _, _), d in zip(pairs, drop) if d < max_drop}
    stats.candidates += len(pairs)
    stats.rejected += len(pairs) - len(keep)
    stats.drops += [float(d) for (n, slot, c, _, _), d in zip(pairs, drop) if (n, slot, c) in keep]
    out = []
    for n, ae in enumerate(items):
        slots = [(w, [x for c, x in enumerate(ae.candidates[slot]) if (n, slot, c) in keep],
                  [x for c, x in enumerate(ae.candidate_ids[slot]) if (n, slot, c) in keep]) for slot, w in enumerate(ae.slot_words)]
        slots = [s for s in slots if s[1]]
        out.append(dataclasses.replace(ae, slot_words=[s[0] for s in slots], candidates=[s[1] for s in slots],
                                       candidate_ids=[s[2] for s in slots]))
    return out
