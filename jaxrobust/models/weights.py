"""Checkpoint tensors in and out: reading safetensors files, a model's parameters as a flat
``{NNX path: array}`` dict and back, and the one error that names every key that does not fit. The
key mapping of each family is in :mod:`.weight_rules`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Iterable

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import SafetensorError, safe_open

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


def set_param(model: nnx.Module, path: str, value: np.ndarray) -> None:
    """Give the parameter at ``path`` (as :func:`flat_params` names it) the value ``value``, in its
    own dtype; the parameter may still be abstract (``nnx.eval_shape``)."""
    node = model
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[int(p)] if p.isdigit() else getattr(node, p)
    var = getattr(node, leaf)
    var.set_value(jnp.asarray(value, dtype=var.get_value().dtype))


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


class SafetensorFiles(Mapping):
    """The tensors of ``.safetensors`` files by key, each read from its file when asked for (the
    headers are read at once); a damaged file is named in the error."""

    def __init__(self, files: Iterable[Path]):
        self._where: dict[str, tuple[object, Path]] = {}
        for f in files:
            handle = self._guard(f, lambda: safe_open(str(f), framework="numpy"))
            self._where.update((key, (handle, f)) for key in handle.keys())

    @staticmethod
    def _guard(f: Path, read):
        try:
            return read()
        except (SafetensorError, OSError, ValueError) as e:
            raise JaxRobustError(f"corrupt or truncated safetensors file {f}: {e}") from e

    def shape(self, key: str) -> tuple[int, ...]:
        """The shape of tensor ``key``, from its file's header."""
        handle, f = self._where[key]
        return tuple(self._guard(f, lambda: handle.get_slice(key).get_shape()))

    def __getitem__(self, key: str) -> np.ndarray:
        handle, f = self._where[key]
        return self._guard(f, lambda: handle.get_tensor(key))

    def __iter__(self):
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)
