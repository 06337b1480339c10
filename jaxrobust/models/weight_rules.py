"""Hugging Face checkpoint tensors <-> NNX parameters, for every family, by rules ``(regex, NNX paths, transform)``.

A rule's regular expression matches a checkpoint key (without the base-model prefix, e.g.
``bert.``, ``model.`` or ``transformer.``, which a checkpoint may or may not carry; head keys --
``classifier``, ``score``, ``lm_head`` -- never carry it); its NNX path templates
(``\\1`` for the matched layer index) name the parameters the tensor fills, and its transform
turns the tensor into them: :func:`T` (PyTorch's ``[out, in]`` linear weight to Flax's
``[in, out]`` kernel), :func:`same`, :func:`split` (a fused projection into its parts, e.g.
GPT-2's ``c_attn``). Each transform has a ``join``, its inverse, so the same tables also export a
model (:func:`rule_state_dict`). The tables are here; which family uses which, with its key prefix
and the keys it ignores, is :mod:`.registry`.

Loading collects every missing, unexpected and mis-shaped key into one error. The classification
head (``head.*``) may be missing (freshly initialised, as transformers does), and so may an untied
causal-LM head, which a sequence-classification checkpoint does not carry (the model then has none).
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

import numpy as np

from jaxrobust.models.weights import check_fit, flat_params, set_param

Transform = Callable[[np.ndarray, object], Sequence[np.ndarray]]


def T(x: np.ndarray, cfg) -> list[np.ndarray]:
    return [x.T]


def same(x: np.ndarray, cfg) -> list[np.ndarray]:
    return [x]


T.join = lambda parts: parts[0].T
same.join = lambda parts: parts[0]


def split(sizes: Callable[[object], Sequence[int]], axis: int, transpose: bool = False) -> Transform:
    """A fused tensor cut along ``axis`` into parts of ``sizes(cfg)`` (each transposed if ``transpose``)."""

    def cut(x: np.ndarray, cfg) -> list[np.ndarray]:
        parts = np.split(x, np.cumsum(sizes(cfg))[:-1], axis=axis)
        return [p.T if transpose else p for p in parts]

    cut.join = lambda parts: np.concatenate([p.T if transpose else p for p in parts], axis=axis)
    return cut


def _linear(hf: str, path: str, bias: bool = True) -> list:
    rules = [(hf + r"\.weight", (path + ".kernel",), T)]
    return rules + [(hf + r"\.bias", (path + ".bias",), same)] if bias else rules


_qkv = lambda cfg: (cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim)
_QKV = tuple(f"layers.\\1.attention.{p}" for p in ("query", "key", "value"))

# GPT-2's Conv1D stores weights [in, out], Flax's layout: no transpose.
GPT2 = [
    (r"wte\.weight", ("embed.embedding",), same),
    (r"wpe\.weight", ("position.embedding",), same),
    (r"h\.(\d+)\.ln_1\.weight", ("layers.\\1.attention_norm.scale",), same),
    (r"h\.(\d+)\.ln_1\.bias", ("layers.\\1.attention_norm.bias",), same),
    (r"h\.(\d+)\.attn\.c_attn\.weight", tuple(p + ".kernel" for p in _QKV), split(_qkv, axis=1)),
    (r"h\.(\d+)\.attn\.c_attn\.bias", tuple(p + ".bias" for p in _QKV), split(_qkv, axis=0)),
    (r"h\.(\d+)\.attn\.c_proj\.weight", ("layers.\\1.attention.output.kernel",), same),
    (r"h\.(\d+)\.attn\.c_proj\.bias", ("layers.\\1.attention.output.bias",), same),
    (r"h\.(\d+)\.ln_2\.weight", ("layers.\\1.mlp_norm.scale",), same),
    (r"h\.(\d+)\.ln_2\.bias", ("layers.\\1.mlp_norm.bias",), same),
    (r"h\.(\d+)\.mlp\.c_fc\.weight", ("layers.\\1.mlp.up.kernel",), same),
    (r"h\.(\d+)\.mlp\.c_fc\.bias", ("layers.\\1.mlp.up.bias",), same),
    (r"h\.(\d+)\.mlp\.c_proj\.weight", ("layers.\\1.mlp.down.kernel",), same),
    (r"h\.(\d+)\.mlp\.c_proj\.bias", ("layers.\\1.mlp.down.bias",), same),
    (r"ln_f\.weight", ("final_norm.scale",), same),
    (r"ln_f\.bias", ("final_norm.bias",), same),
]

LLAMA = [
    (r"embed_tokens\.weight", ("embed.embedding",), same),
    (r"layers\.(\d+)\.input_layernorm\.weight", ("layers.\\1.attention_norm.scale",), same),
    *[rule for hf, nnx_name in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "output"))
      for rule in _linear(rf"layers\.(\d+)\.self_attn\.{hf}_proj", f"layers.\\1.attention.{nnx_name}")],
    (r"layers\.(\d+)\.post_attention_layernorm\.weight", ("layers.\\1.mlp_norm.scale",), same),
    *[rule for name in ("gate", "up", "down") for rule in _linear(rf"layers\.(\d+)\.mlp\.{name}_proj", f"layers.\\1.mlp.{name}")],
    (r"norm\.weight", ("final_norm.scale",), same),
]

# Phi-3 fuses q/k/v and gate/up into single projections (rows: q, k, v; gate, up).
_gate_up = lambda cfg: (cfg.intermediate_size, cfg.intermediate_size)
PHI3 = [
    rule for rule in LLAMA if "self_attn" not in rule[0] and r"mlp\.gate" not in rule[0] and r"mlp\.up" not in rule[0]
] + [
    (r"layers\.(\d+)\.self_attn\.qkv_proj\.weight", tuple(p + ".kernel" for p in _QKV), split(_qkv, axis=0, transpose=True)),
    (r"layers\.(\d+)\.self_attn\.o_proj\.weight", ("layers.\\1.attention.output.kernel",), T),
    (r"layers\.(\d+)\.mlp\.gate_up_proj\.weight", ("layers.\\1.mlp.gate.kernel", "layers.\\1.mlp.up.kernel"),
     split(_gate_up, axis=0, transpose=True)),
]

# Gemma 2/3: a norm before and after each branch; Gemma 3 also normalises query and key heads.
GEMMA2 = [rule for rule in LLAMA if "post_attention_layernorm" not in rule[0]] + [
    (r"layers\.(\d+)\.post_attention_layernorm\.weight", ("layers.\\1.attention_post_norm.scale",), same),
    (r"layers\.(\d+)\.pre_feedforward_layernorm\.weight", ("layers.\\1.mlp_norm.scale",), same),
    (r"layers\.(\d+)\.post_feedforward_layernorm\.weight", ("layers.\\1.mlp_post_norm.scale",), same),
]
GEMMA3 = GEMMA2 + [
    (r"layers\.(\d+)\.self_attn\.q_norm\.weight", ("layers.\\1.attention.q_norm.scale",), same),
    (r"layers\.(\d+)\.self_attn\.k_norm\.weight", ("layers.\\1.attention.k_norm.scale",), same),
]

PHI = [
    (r"embed_tokens\.weight", ("embed.embedding",), same),
    (r"layers\.(\d+)\.input_layernorm\.weight", ("layers.\\1.attention_norm.scale",), same),
    (r"layers\.(\d+)\.input_layernorm\.bias", ("layers.\\1.attention_norm.bias",), same),
    *[rule for hf, nnx_name in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"), ("dense", "output"))
      for rule in _linear(rf"layers\.(\d+)\.self_attn\.{hf}", f"layers.\\1.attention.{nnx_name}")],
    *_linear(r"layers\.(\d+)\.mlp\.fc1", "layers.\\1.mlp.up"),
    *_linear(r"layers\.(\d+)\.mlp\.fc2", "layers.\\1.mlp.down"),
    (r"final_layernorm\.weight", ("final_norm.scale",), same),
    (r"final_layernorm\.bias", ("final_norm.bias",), same),
    (r"lm_head\.bias", ("lm_head.bias",), same),
]

# --- encoders (post-LN): BERT, RoBERTa, MPNet ------------------------------------------------------


def _layer_norm(hf: str, path: str) -> list:
    return [(hf + r"\.weight", (path + ".scale",), same), (hf + r"\.bias", (path + ".bias",), same)]


_LAYER = r"encoder\.layer\.(\d+)\."
_EMBEDDINGS = [
    (r"embeddings\.word_embeddings\.weight", ("embeddings.word.embedding",), same),
    (r"embeddings\.position_embeddings\.weight", ("embeddings.position.embedding",), same),
    *_layer_norm(r"embeddings\.LayerNorm", "embeddings.norm"),
]
_TOKEN_TYPES = [(r"embeddings\.token_type_embeddings\.weight", ("embeddings.token_type.embedding",), same)]
_FFN = [
    *_linear(_LAYER + r"intermediate\.dense", "layers.\\1.intermediate"),
    *_linear(_LAYER + r"output\.dense", "layers.\\1.output"),
    *_layer_norm(_LAYER + r"output\.LayerNorm", "layers.\\1.output_norm"),
]
_BERT_ATTENTION = [
    *[rule for name in ("query", "key", "value") for rule in _linear(_LAYER + rf"attention\.self\.{name}", f"layers.\\1.attention.{name}")],
    *_linear(_LAYER + r"attention\.output\.dense", "layers.\\1.attention.output"),
    *_layer_norm(_LAYER + r"attention\.output\.LayerNorm", "layers.\\1.attention_norm"),
]
_DENSE_TANH_HEAD = [*_linear(r"classifier\.dense", "head.dense"), *_linear(r"classifier\.out_proj", "head.out")]
BERT = [*_EMBEDDINGS, *_TOKEN_TYPES, *_BERT_ATTENTION, *_FFN, *_linear(r"pooler\.dense", "head.dense"), *_linear("classifier", "head.out")]
ROBERTA = [*_EMBEDDINGS, *_TOKEN_TYPES, *_BERT_ATTENTION, *_FFN, *_DENSE_TANH_HEAD]
MPNET = [
    *_EMBEDDINGS,
    *[rule for hf, name in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "output"))
      for rule in _linear(_LAYER + rf"attention\.attn\.{hf}", f"layers.\\1.attention.{name}")],
    *_layer_norm(_LAYER + r"attention\.LayerNorm", "layers.\\1.attention_norm"),
    *_FFN,
    (r"encoder\.relative_attention_bias\.weight", ("relative_bias.embedding",), same),
    *_DENSE_TANH_HEAD,
]

# The heads of every decoder: sequence classification (``score``) and an untied causal-LM head.
HEADS = [(r"score\.weight", ("head.kernel",), T), (r"lm_head\.weight", ("lm_head.kernel",), T)]
HEAD_KEYS = ("classifier", "score.", "lm_head.")  # checkpoint keys without the base-model prefix


def rule_state_dict(model, family, cfg, only: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The model's parameters under the checkpoint keys of transformers' ``XForSequenceClassification``
    (``XForCausalLM`` keys for the LM head, if the model has one), in the dtype the model holds them:
    the rules run backwards.
    ``only``: just the tensors of these NNX paths (e.g. a freshly initialised head).

    Every rule's regular expression is a plain key with ``(\\d+)`` for the layer index, so it reads
    as a key template; a parameter no rule writes is an error. ``family``: the model's
    :class:`~.registry.Family`."""
    params = {path: np.asarray(v) for path, v in flat_params(model).items() if only is None or path in only}
    prefix, out, written = family.prefix, {}, set()
    for pattern, targets, transform in family.rules:
        template = pattern.replace(r"(\d+)", "{0}").replace("\\.", ".")
        for i in range(cfg.num_layers) if "{0}" in template else [None]:
            paths = [t.replace("\\1", str(i)) for t in targets]
            if not all(p in params for p in paths):
                continue  # e.g. a bias this config has none of, or the LM head of a classifier
            key = template.format(i)
            out[key if key.startswith(HEAD_KEYS) else prefix + key] = np.ascontiguousarray(
                transform.join([params[p] for p in paths]))
            written.update(paths)
    if left := sorted(set(params) - written):
        raise AssertionError(f"no export rule for parameters {', '.join(left)}")
    return out


def load_rule_weights(model, family, cfg, weights: Mapping[str, np.ndarray], source: str, check_only: bool = False) -> list[str]:
    """Copy checkpoint ``weights`` into ``model`` in place by the rules of ``family`` (a
    :class:`~.registry.Family`).

    Tensors are read from ``weights`` one at a time (a :class:`~.weights.SafetensorFiles` reads each
    from disk when asked) and each goes into its parameter at once, so the checkpoint is never held
    in memory beside the model. Returns the NNX paths left freshly initialised (only head parameters
    may be); a causal-LM head the checkpoint lacks is removed (``model.lm_head = None``). Raises one
    ``JaxRobustError`` listing every missing, unexpected or mis-shaped key otherwise (the model is
    then partly filled, to be dropped). ``check_only``: the same checks and answer from the tensors'
    shapes alone (a :class:`~.weights.SafetensorFiles` reads no data for them), the model untouched.
    """
    rules = [(re.compile(p + "$"), targets, fn) for p, targets, fn in family.rules]
    ignored = [re.compile(p) for p in family.ignored]
    prefix = family.prefix
    params = {path: v.shape for path, v in flat_params(model).items()}  # shapes only: the old values must be freed as they are replaced
    loaded: set[str] = set()
    unexpected, misshaped, named = [], [], set()
    for key in weights:
        bare = key.removeprefix(prefix)
        if any(p.match(bare) for p in ignored):
            continue
        if bare.startswith("lm_head.") and getattr(model, "lm_head", None) is None:
            continue  # the tied head is the embedding matrix; a classifier built without one skips it
        for pattern, targets, transform in rules:
            m = pattern.match(bare)
            if m:
                break
        else:
            unexpected.append(key)
            continue
        paths = [m.expand(t) for t in targets]
        if any(p not in params for p in paths):  # e.g. a layer index beyond the config's layers
            unexpected.append(key)
            continue
        # Shapes first, on zero-stride stand-ins: a tensor that does not fit is never read.
        shape = weights.shape(key) if hasattr(weights, "shape") else np.shape(weights[key])
        shapes = [params[p] for p in paths]
        if [x.shape for x in transform(np.broadcast_to(np.float32(0), shape), cfg)] != [tuple(s) for s in shapes]:
            expected = transform.join([np.broadcast_to(np.float32(0), s) for s in shapes]).shape  # in the checkpoint's layout
            misshaped.append(f"{key} {tuple(shape)}, expected {tuple(expected)}")
            named.update(paths)  # reported as mis-shaped, not also as missing
            continue
        if not check_only:
            for path, part in zip(paths, transform(np.asarray(weights[key]), cfg)):
                set_param(model, path, part)
        loaded.update(paths)
    missing = sorted(p for p in params if p not in loaded and p not in named)
    fresh = [p for p in missing if p.startswith("head.")]
    no_lm_head = [p for p in missing if p.startswith("lm_head.")]
    missing = [p for p in missing if not p.startswith(("head.", "lm_head."))]
    check_fit(source, cfg.model_type, missing, unexpected, misshaped)
    if no_lm_head and not check_only:
        model.lm_head = None
    return fresh
