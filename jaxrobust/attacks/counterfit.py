"""Counter-fitting word vectors to synonym and antonym constraints (Mrkšić et al., NAACL 2016).

Plain distributional vectors put antonyms next to each other (GloVe: good -> bad, cheap ->
expensive), which makes their nearest neighbours useless as "synonyms" for word-substitution
attacks: an attack would flip the meaning, not fool the model. Counter-fitting moves the vectors
``V`` to ``V'`` minimising, with ``d(u, w) = 1 - cos(u, w)``::

    k1 * sum_{(u,w) in antonyms} relu(delta - d(u', w'))         antonym repel
  + k2 * sum_{(u,w) in synonyms} relu(d(u', w') - gamma)         synonym attract
  + k3 * sum_i sum_{j in N(i)} relu(d(v'_i, v'_j) - d(v_i, v_j))  vector-space preservation

where ``N(i)`` are the words within distance ``rho`` of word ``i`` in the original space. The
hyperparameters are the paper's (delta = 1, gamma = 0, rho = 0.2, equal weights k1 = k2 = k3 = 0.1
as in its reference configuration). As in the paper's procedure, antonym pairs are taken out of the
preservation pairs and of the synonyms: an antonym pair that starts close must be free to separate.

Where this differs from the paper, and why:

* constraints come from WordNet (:mod:`jaxrobust.attacks.wordnet`), installable offline, instead
  of PPDB: synonyms through each word's commonest sense only, antonyms direct plus WordNet's
  indirect adjective antonyms (good / awful), since WordNet's direct links alone are few (about
  1,200 pairs among 50,000 GloVe words);
* the optimiser is minibatch Adam (optax) for a fixed number of epochs, one jit-compiled
  ``lax.scan`` per epoch (each epoch visits every pair once), instead of 20 full-batch SGD steps.

:func:`glove_cf` is the ``glove-cf`` synonym source: the 50,000 most frequent GloVe 6B 50d words
(bundle ``glove-6b-50d``) that can be synonym candidates, counter-fitted once and cached under
``$JAXROBUST_CACHE/synonyms/``. GloVe 50d is a small, noisy space: counter-fitting pushes the
antonyms apart (cheap/expensive: cosine 0.86 -> 0.0) and pulls WordNet synonyms together, but the
other neighbours of frequent words stay distributional (good: better, always, make, ...).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrobust.assets import cache_dir, fetch_bundle
from jaxrobust import interrupt

GLOVE_BUNDLE = "bundle:glove-6b-50d"
# GloVe lists its 400,000 words by corpus frequency. 50,000 vocabulary words (down to "impregnable")
# is about the size of the counter-fitted vocabulary of Mrkšić et al. (65,713) and keeps the
# all-pairs neighbour searches of the first build under a minute each on 2 CPU cores.
GLOVE_VOCAB = 50_000
# Bump when the counter-fitting or vocabulary changes: cached vectors under another version are
# rebuilt.
CF_VERSION = 1
_ALPHA = re.compile(r"[a-z]+")


@dataclasses.dataclass(frozen=True)
class CounterFitConfig:
    """Hyperparameters of :func:`counter_fit` (the paper's, plus the optimiser's)."""

    delta: float = 1.0  # antonyms are pushed to at least this distance (cosine <= 0)
    gamma: float = 0.0  # synonyms are pulled to at most this distance
    rho: float = 0.2  # radius of the neighbourhood whose distances are preserved
    k1: float = 0.1  # antonym-repel weight
    k2: float = 0.1  # synonym-attract weight
    k3: float = 0.1  # vector-space-preservation weight
    epochs: int = 20
    batch_size: int = 4096  # pairs of the largest set per step; the others are split as often
    learning_rate: float = 0.01
    seed: int = 0


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero). ``[N, D] -> [N, D]`` float32."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


@functools.partial(jax.jit, static_argnames="m")
def _top_chunk(queries: jax.Array, keys: jax.Array, offset: jax.Array, m: int):
    """The ``m`` most similar keys of each query, the query itself excluded."""
    sims = queries @ keys.T  # [C, N]
    rows = jnp.arange(queries.shape[0])
    sims = sims.at[rows, offset + rows].set(-jnp.inf)
    return jax.lax.top_k(sims, m)


def nearest_neighbours(vectors: np.ndarray, m: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``m`` nearest other rows by cosine.

    ``vectors``: ``[N, D]``. Returns ``ids [N, m]`` int32 and ``sims [N, m]`` float32, most similar
    first. Chunked ``[chunk, D] x [D, N]`` products, so memory stays ``O(chunk * N)``.
    """
    x = jnp.asarray(unit_rows(vectors))
    n = x.shape[0]
    m = min(m, n - 1)
    if m < 1:  # fewer than two words: nobody has a neighbour
        return np.zeros((n, 0), np.int32), np.zeros((n, 0), np.float32)
    ids = np.empty((n, m), np.int32)
    sims = np.empty((n, m), np.float32)
    for start in range(0, n, chunk):
        interrupt.check()  # Ctrl-C stops between device batches
        q = x[start : start + chunk]
        if q.shape[0] < chunk:  # pad the last chunk so the function compiles once
            q = jnp.pad(q, ((0, chunk - q.shape[0]), (0, 0)))
        s, i = _top_chunk(q, x, jnp.int32(start), m)
        stop = min(start + chunk, n)
        sims[start:stop] = np.asarray(s)[: stop - start]
        ids[start:stop] = np.asarray(i)[: stop - start]
    return ids, sims


def neighbourhood_pairs(vectors: np.ndarray, rho: float, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Pairs within distance ``rho`` (cosine > 1 - rho): ``([P, 2] int32 with i < j, [P] float32 d)``."""
    x = unit_rows(vectors)
    pairs, dists = [], []
    for start in range(0, x.shape[0], chunk):
        sims = x[start : start + chunk] @ x[start:].T  # only j >= i: each pair once
        rows, cols = np.nonzero(sims > 1.0 - rho)
        cols_abs = cols + start
        keep = cols_abs > rows + start
        pairs.append(np.stack([rows[keep] + start, cols_abs[keep]], axis=1))
        dists.append(1.0 - sims[rows[keep], cols[keep]])
    return np.concatenate(pairs).astype(np.int32), np.concatenate(dists).astype(np.float32)


def _rows_in(pairs: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``[P]`` bool: which unordered pairs of ``pairs [P, 2]`` also occur in ``other [Q, 2]``."""
    def key(p):
        p = np.sort(p.astype(np.int64), axis=1)
        return p[:, 0] << 32 | p[:, 1]

    return np.isin(key(pairs), key(other))


def _distance(v: jax.Array, pairs: jax.Array) -> jax.Array:
    """``1 - cos`` of each pair. ``v [N, D]``, ``pairs [B, 2]`` -> ``[B]``."""
    a, b = v[pairs[:, 0]], v[pairs[:, 1]]
    cos = jnp.sum(a * b, axis=-1) / (jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1) + 1e-8)
    return 1.0 - cos


def counter_fit_loss(v, ant, syn, vsp, vsp_d0, weights, cfg: CounterFitConfig) -> jax.Array:
    """The counter-fitting objective on one minibatch (padded pairs have weight 0).

    ``ant``/``syn``/``vsp``: ``[B, 2]`` ids; ``vsp_d0``: ``[B]`` original distances; ``weights``:
    three ``[B]`` masks. Each VSP pair stands for both j in N(i) and i in N(j), hence the factor 2.
    """
    w_ant, w_syn, w_vsp = weights
    repel = jnp.sum(w_ant * jax.nn.relu(cfg.delta - _distance(v, ant)))
    attract = jnp.sum(w_syn * jax.nn.relu(_distance(v, syn) - cfg.gamma))
    preserve = 2.0 * jnp.sum(w_vsp * jax.nn.relu(_distance(v, vsp) - vsp_d0))
    return cfg.k1 * repel + cfg.k2 * attract + cfg.k3 * preserve


def _batched(pairs: np.ndarray, steps: int, rng: np.random.Generator, extra: np.ndarray | None = None):
    """Shuffle ``pairs [P, 2]`` into ``[steps, B, 2]`` (padded with pair (0, 0), weight 0)."""
    order = rng.permutation(len(pairs))
    size = max(1, -(-len(pairs) // steps))
    pad = steps * size - len(pairs)
    batched = np.concatenate([pairs[order], np.zeros((pad, 2), np.int32)]).reshape(steps, size, 2)
    weight = np.concatenate([np.ones(len(pairs), np.float32), np.zeros(pad, np.float32)]).reshape(steps, size)
    if extra is None:
        return batched, weight
    return batched, weight, np.concatenate([extra[order], np.zeros(pad, np.float32)]).reshape(steps, size)


def counter_fit(
    vectors: np.ndarray,
    antonyms: np.ndarray,
    synonyms: np.ndarray,
    cfg: CounterFitConfig = CounterFitConfig(),
    *,
    log=None,
) -> np.ndarray:
    """Counter-fitted copy of ``vectors [N, D]`` (unit rows) given ``[P, 2]`` id pairs.

    ``log(epoch, loss)`` is called after each epoch when given.
    """
    v0 = unit_rows(vectors)
    antonyms = np.asarray(antonyms, np.int32).reshape(-1, 2)
    synonyms = np.asarray(synonyms, np.int32).reshape(-1, 2)
    vsp, vsp_d0 = neighbourhood_pairs(v0, cfg.rho)
    # An antonym pair that starts within rho must be free to move apart: the preservation term
    # would otherwise hold it at its old distance (and a pair listed as both synonyms and
    # antonyms is treated as antonyms), as in the paper's procedure.
    keep = ~_rows_in(vsp, antonyms)
    vsp, vsp_d0 = vsp[keep], vsp_d0[keep]
    synonyms = synonyms[~_rows_in(synonyms, antonyms)]
    sizes = [len(antonyms), len(synonyms), len(vsp)]
    steps = max(1, -(-max(sizes) // cfg.batch_size))
    opt = optax.adam(cfg.learning_rate)
    grad_fn = jax.value_and_grad(counter_fit_loss)

    @jax.jit
    def epoch(v, opt_state, batches):
        def step(carry, batch):
            v, opt_state = carry
            ant, syn, vsp_b, d0, w_ant, w_syn, w_vsp = batch
            loss, g = grad_fn(v, ant, syn, vsp_b, d0, (w_ant, w_syn, w_vsp), cfg)
            updates, opt_state = opt.update(g, opt_state, v)
            return (optax.apply_updates(v, updates), opt_state), loss

        (v, opt_state), losses = jax.lax.scan(step, (v, opt_state), batches)
        return v, opt_state, jnp.sum(losses)

    v = jnp.asarray(v0)
    opt_state = opt.init(v)
    rng = np.random.default_rng(cfg.seed)
    for e in range(cfg.epochs):
        interrupt.check()
        ant_b, ant_w = _batched(antonyms, steps, rng)
        syn_b, syn_w = _batched(synonyms, steps, rng)
        vsp_b, vsp_w, d0 = _batched(vsp, steps, rng, vsp_d0)
        v, opt_state, loss = epoch(v, opt_state, (ant_b, syn_b, vsp_b, d0, ant_w, syn_w, vsp_w))
        if log is not None:
            log(e, float(loss))
    return unit_rows(np.asarray(v))


def load_glove(n_words: int = GLOVE_VOCAB, keep: Callable[[str], bool] | None = None) -> tuple[list[str], np.ndarray]:
    """The ``n_words`` most frequent GloVe 6B 50d words passing ``keep`` (default: all-letter
    words) and their ``[n, 50]`` vectors (GloVe lists its words by corpus frequency)."""
    import pyarrow.parquet as pq

    keep = keep or (lambda w: bool(_ALPHA.fullmatch(w)))
    root = fetch_bundle(GLOVE_BUNDLE)
    all_words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    rows = [i for i, w in enumerate(all_words) if isinstance(w, str) and keep(w)][:n_words]
    emb = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return [all_words[i] for i in rows], np.asarray(emb[rows], np.float32)


def save_npz_atomic(path: Path, **arrays) -> None:
    """Write ``arrays`` to ``path`` (.npz) so that it is either absent/old or complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def glove_cf_path() -> Path:
    return cache_dir() / "synonyms" / f"glove-cf-v{CF_VERSION}-{GLOVE_VOCAB}.npz"


def glove_cf(verbose: bool = True) -> tuple[list[str], np.ndarray]:
    """The ``glove-cf`` vectors: ``(words, [N, 50] unit rows)``, built once and cached.

    Vocabulary: the :data:`GLOVE_VOCAB` most frequent GloVe words that can be synonym candidates
    (:func:`jaxrobust.attacks.synonyms.is_vocab_word`). Stop words are left out: they are never
    substituted, and in GloVe 50d they are everybody's neighbours, so preserving their distances
    would hold good and bad together. Constraints: WordNet synonyms
    (each word's commonest sense) and antonyms, direct and indirect (see
    :mod:`jaxrobust.attacks.wordnet`). The first build takes one to two minutes on 2 CPU cores
    (plus half a minute to read WordNet if not cached); later calls read :func:`glove_cf_path`.
    """
    from jaxrobust.attacks.synonyms import is_vocab_word  # synonyms imports this module
    from jaxrobust.attacks.wordnet import antonym_pairs, synonym_pairs

    path = glove_cf_path()
    if path.is_file():
        with np.load(path) as z:
            return [str(w) for w in z["words"]], z["vectors"]
    say = (lambda msg: print(f"glove-cf: {msg}", file=sys.stderr, flush=True)) if verbose else (lambda msg: None)
    t0 = time.perf_counter()
    words, vectors = load_glove(keep=is_vocab_word)
    say(f"building once: {len(words):,} GloVe words; reading WordNet constraints")
    ant, syn = antonym_pairs(words), synonym_pairs(words)
    say(f"{len(ant):,} antonym and {len(syn):,} synonym pairs ({time.perf_counter() - t0:.0f} s); counter-fitting")
    fitted = counter_fit(vectors, ant, syn, log=lambda e, loss: say(f"epoch {e + 1}: loss {loss:.1f}"))
    save_npz_atomic(path, words=np.array(words), vectors=fitted.astype(np.float32))
    say(f"done in {time.perf_counter() - t0:.0f} s -> {path}")
    return words, fitted


def cosine(vectors: np.ndarray, index: dict[str, int], a: str, b: str) -> float:
    """Cosine of two words of a vector table (``vectors [N, D]``)."""
    u, w = vectors[index[a]], vectors[index[b]]
    return float(u @ w / (np.linalg.norm(u) * np.linalg.norm(w)))
