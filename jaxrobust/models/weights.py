"""Checkpoint tensors in and out: reading safetensors files, a model's parameters as a flat
``{NNX path: array}`` dict and back, and the one error that names every key that does not fit. The
key mapping of each family is in :mod:`.weight_rules`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrobust.errors import JaxRobustError


def flat_params(model: nnx.Module) -> dict[str, np.ndarray]:
    """``{"layers.0.attention.query.kernel": array, ...}`` for every ``nnx.Param`` of ``model``."""
    flat = {}

    def walk(prefix: str, tree) -> None:
        for k, v in tree.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(key + ".", v)
            else:
                flat[key] = v

    walk("", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    return flat


def set_flat_params(model: nnx.Module, flat: dict[str, np.ndarray]) -> None:
    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    for path, value in flat.items():
        node = pure
        *parents, leaf = [int(p) if p.isdigit() else p for p in path.split(".")]
        for p in parents:
            node = node[p]
        node[leaf] = jnp.asarray(value, dtype=node[leaf].dtype)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)


def check_fit(source: str, model_type: str, missing: list[str], unexpected: list[str], misshaped: list[str]) -> None:
    """Raise one error naming every missing, unexpected and mis-shaped key (the first six of each)."""
    if not (unexpected or missing or misshaped):
        return
    parts = []
    for name, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if keys:
            shown = ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")
            parts.append(f"{name}: {shown}")
    raise JaxRobustError(f"weights in {source} do not fit the {model_type} classifier; " + "; ".join(parts))


def read_safetensors(files: Iterable[Path]) -> dict[str, np.ndarray]:
    """All tensors of the given ``.safetensors`` files; a damaged file is named in the error."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    weights: dict[str, np.ndarray] = {}
    for f in files:
        try:
            weights.update(load_file(str(f)))
        except (SafetensorError, OSError, ValueError) as e:
            raise JaxRobustError(f"corrupt or truncated safetensors file {f}: {e}") from e
    return weights
