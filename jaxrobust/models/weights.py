"""Hugging Face checkpoint keys <-> NNX parameter paths, both directions, from one table per family.

Each rule is ``(hf_key, nnx_path, transpose)`` with ``{i}`` standing for a layer index. Hugging Face
keys are written without the family's base-model prefix (``bert.``/``roberta.``/``mpnet.``), which a
checkpoint may or may not carry; head keys (``classifier.*``) never carry it. Linear weights are stored
``[out, in]`` by PyTorch and ``[in, out]`` by Flax, hence ``transpose``.

Loading collects every missing, unexpected and mis-shaped key and raises them in one error. Only the
head (``head.*``) may be missing: it is then freshly initialised, as transformers does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrobust.errors import JaxRobustError
from jaxrobust.models.config import EncoderConfig

Rule = tuple[str, str, bool]


def _linear(hf: str, nnx_path: str) -> list[Rule]:
    return [(f"{hf}.weight", f"{nnx_path}.kernel", True), (f"{hf}.bias", f"{nnx_path}.bias", False)]


def _norm(hf: str, nnx_path: str) -> list[Rule]:
    return [(f"{hf}.weight", f"{nnx_path}.scale", False), (f"{hf}.bias", f"{nnx_path}.bias", False)]


_EMBEDDINGS = [
    ("embeddings.word_embeddings.weight", "embeddings.word.embedding", False),
    ("embeddings.position_embeddings.weight", "embeddings.position.embedding", False),
    *_norm("embeddings.LayerNorm", "embeddings.norm"),
]
_FFN = [
    *_linear("encoder.layer.{i}.intermediate.dense", "layers.{i}.intermediate"),
    *_linear("encoder.layer.{i}.output.dense", "layers.{i}.output"),
    *_norm("encoder.layer.{i}.output.LayerNorm", "layers.{i}.output_norm"),
]
_BERT_ATTENTION = [
    *_linear("encoder.layer.{i}.attention.self.query", "layers.{i}.attention.query"),
    *_linear("encoder.layer.{i}.attention.self.key", "layers.{i}.attention.key"),
    *_linear("encoder.layer.{i}.attention.self.value", "layers.{i}.attention.value"),
    *_linear("encoder.layer.{i}.attention.output.dense", "layers.{i}.attention.output"),
    *_norm("encoder.layer.{i}.attention.output.LayerNorm", "layers.{i}.attention_norm"),
]
_DENSE_TANH_HEAD = [*_linear("classifier.dense", "head.dense"), *_linear("classifier.out_proj", "head.out")]

RULES: dict[str, list[Rule]] = {
    "bert": [
        *_EMBEDDINGS,
        ("embeddings.token_type_embeddings.weight", "embeddings.token_type.embedding", False),
        *_BERT_ATTENTION,
        *_FFN,
        *_linear("pooler.dense", "head.dense"),
        *_linear("classifier", "head.out"),
    ],
    "roberta": [
        *_EMBEDDINGS,
        ("embeddings.token_type_embeddings.weight", "embeddings.token_type.embedding", False),
        *_BERT_ATTENTION,
        *_FFN,
        *_DENSE_TANH_HEAD,
    ],
    "mpnet": [
        *_EMBEDDINGS,
        *_linear("encoder.layer.{i}.attention.attn.q", "layers.{i}.attention.query"),
        *_linear("encoder.layer.{i}.attention.attn.k", "layers.{i}.attention.key"),
        *_linear("encoder.layer.{i}.attention.attn.v", "layers.{i}.attention.value"),
        *_linear("encoder.layer.{i}.attention.attn.o", "layers.{i}.attention.output"),
        *_norm("encoder.layer.{i}.attention.LayerNorm", "layers.{i}.attention_norm"),
        *_FFN,
        ("encoder.relative_attention_bias.weight", "relative_bias.embedding", False),
        *_DENSE_TANH_HEAD,
    ],
}

# Keys that checkpoints carry but a classifier does not use: buffers, pre-training heads, and the
# pooler of families whose classification head does its own pooling (transformers drops it too).
_IGNORED = {
    "bert": [r".*position_ids$", r".*token_type_ids$", r"^cls\..*"],
    "roberta": [r".*position_ids$", r".*token_type_ids$", r"^lm_head\..*", r"^pooler\..*"],
    "mpnet": [r".*position_ids$", r"^lm_head\..*", r"^pooler\..*"],
}


def _compile(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{i\}", r"(\d+)") + "$")


def _fill(template: str, match: re.Match) -> str:
    return template.replace("{i}", match.group(1)) if "{i}" in template else template


def _is_head_key(hf_key: str) -> bool:
    return hf_key.startswith("classifier")


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


def load_hf_weights(model: nnx.Module, cfg: EncoderConfig, weights: dict[str, np.ndarray], source: str) -> list[str]:
    """Copy Hugging Face ``weights`` into ``model`` in place.

    Returns the NNX paths left freshly initialised (only head parameters may be). Raises one
    ``JaxRobustError`` listing every missing, unexpected or mis-shaped key otherwise.
    """
    rules = [(_compile(hf), nnx_t, t) for hf, nnx_t, t in RULES[cfg.model_type]]
    ignored = [re.compile(p) for p in _IGNORED[cfg.model_type]]
    prefix = cfg.family["prefix"]
    params = flat_params(model)
    loaded: dict[str, np.ndarray] = {}
    unexpected, misshaped = [], []
    for key, value in weights.items():
        bare = key.removeprefix(prefix)
        if any(p.match(bare) for p in ignored):
            continue
        for pattern, nnx_template, transpose in rules:
            m = pattern.match(bare)
            if m:
                path = _fill(nnx_template, m)
                break
        else:
            unexpected.append(key)
            continue
        if path not in params:  # e.g. a layer index beyond num_hidden_layers
            unexpected.append(key)
            continue
        value = np.asarray(value)
        expected = params[path].shape[::-1] if transpose else params[path].shape
        if value.shape != expected:
            misshaped.append(f"{key} {tuple(value.shape)}, expected {tuple(expected)}")
            continue
        loaded[path] = value.T if transpose else value
    missing = sorted(p for p in params if p not in loaded)
    fresh = [p for p in missing if p.startswith("head.")]
    missing = [p for p in missing if not p.startswith("head.")]
    check_fit(source, cfg.model_type, missing, unexpected, misshaped)
    set_flat_params(model, loaded)
    return fresh


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


def to_hf_state_dict(
    model: nnx.Module, cfg: EncoderConfig, only: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """The classifier's parameters under the keys of transformers' ``XForSequenceClassification``.

    ``only``: restrict to these NNX paths (e.g. the freshly initialised head).
    """
    inverse = [(_compile(nnx_t), hf, t) for hf, nnx_t, t in RULES[cfg.model_type]]
    params = flat_params(model)
    out = {}
    for path in params if only is None else only:
        value = params[path]
        for pattern, hf_template, transpose in inverse:
            m = pattern.match(path)
            if m:
                key = _fill(hf_template, m)
                key = key if _is_head_key(key) else cfg.family["prefix"] + key
                array = np.asarray(value, dtype=np.float32)
                out[key] = np.ascontiguousarray(array.T if transpose else array)
                break
        else:
            raise AssertionError(f"no export rule for parameter {path}")
    return out


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
