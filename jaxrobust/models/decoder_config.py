"""The decoder configuration: one dataclass whose fields are the differences between the decoder
families, read from (and checked against) each family's ``config.json``.

As for the encoders (:mod:`.config`), every Hugging Face attribute that changes the computation is
ported or rejected by name; the file is read as JSON, with transformers' class defaults for keys a
hand-written file leaves out.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from jaxrobust.errors import JaxRobustError
from jaxrobust.models.config import hf_num_labels

_LLAMA = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=None, head_dim=None, hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-6,
              tie_word_embeddings=False, rope_theta=10000.0, rope_scaling=None, attention_bias=False, attention_dropout=0.0,
              mlp_bias=False, pad_token_id=None, eos_token_id=2, sliding_window=None)
# transformers' config class defaults of the keys read here, per model_type (checked in the tests).
HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
                 activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, layer_norm_epsilon=1e-5,
                 scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False, tie_word_embeddings=True,
                 pad_token_id=None, eos_token_id=50256, add_cross_attention=False),
    "llama": _LLAMA,
    "mistral": dict(_LLAMA, intermediate_size=14336, num_key_value_heads=8, max_position_embeddings=4096 * 32,
                    sliding_window=4096, eos_token_id=2),
    "qwen2": dict(_LLAMA, vocab_size=151936, intermediate_size=22016, num_key_value_heads=32, max_position_embeddings=32768,
                  use_sliding_window=False, sliding_window=4096, max_window_layers=28, layer_types=None, eos_token_id=None),
    "phi3": dict(_LLAMA, vocab_size=32064, hidden_size=3072, intermediate_size=8192, max_position_embeddings=4096,
                 rms_norm_eps=1e-5, pad_token_id=32000, eos_token_id=32000, resid_pdrop=0.0, embd_pdrop=0.0,
                 partial_rotary_factor=1.0),
    "gemma": dict(_LLAMA, vocab_size=256000, hidden_size=3072, intermediate_size=24576, num_hidden_layers=28,
                  num_attention_heads=16, num_key_value_heads=16, head_dim=256, hidden_act="gelu_pytorch_tanh",
                  max_position_embeddings=8192, pad_token_id=0, eos_token_id=1, tie_word_embeddings=True),
    "gemma2": dict(_LLAMA, vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                   num_attention_heads=8, num_key_value_heads=4, head_dim=256, hidden_activation="gelu_pytorch_tanh",
                   max_position_embeddings=8192, pad_token_id=0, eos_token_id=1, tie_word_embeddings=True,
                   query_pre_attn_scalar=256, sliding_window=4096, layer_types=None, final_logit_softcapping=30.0,
                   attn_logit_softcapping=50.0),
    "gemma3_text": dict(_LLAMA, vocab_size=262208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256, hidden_activation="gelu_pytorch_tanh",
                        max_position_embeddings=131072, pad_token_id=0, eos_token_id=1, tie_word_embeddings=True,
                        rope_theta=1000000.0, rope_local_base_freq=10000.0, query_pre_attn_scalar=256,
                        sliding_window=4096, sliding_window_pattern=6, layer_types=None, final_logit_softcapping=None,
                        attn_logit_softcapping=None),
    "phi": dict(_LLAMA, vocab_size=51200, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                hidden_act="gelu_new", max_position_embeddings=2048, layer_norm_eps=1e-5, partial_rotary_factor=0.5,
                qk_layernorm=False, resid_pdrop=0.0, embd_pdrop=0.0, eos_token_id=2),
}
DECODER_TYPES = tuple(HF_DEFAULTS)
GEMMAS = ("gemma", "gemma2", "gemma3_text")
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Everything the decoder trunk (:mod:`.decoder`) and its heads need."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int  # grouped-query attention: each KV head serves num_heads / num_kv_heads heads
    head_dim: int
    intermediate_size: int
    act: str
    norm: str  # "layer" (LayerNorm with bias) or "rms"
    norm_eps: float
    positions: str  # "learned" (GPT-2) or "rotary"
    max_position_embeddings: int
    mlp: str  # "plain" (fc -> act -> proj) or "gated" (down(act(gate) * up))
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    tie_word_embeddings: bool
    rope_theta: float = 10000.0
    rotary_dim: int | None = None  # the leading head dimensions rotated (partial rotary); None: all
    # Llama 3's rope scaling: (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings).
    rope_llama3: tuple[float, float, float, int] | None = None
    layer_windows: tuple[int | None, ...] = ()  # per layer: sliding-window size, or None (full attention)
    # Per layer (Gemma 3): the rotary base and linear scaling factor; empty: rope_theta, no scaling.
    layer_rope: tuple[tuple[float, float], ...] = ()
    norm_offset: float = 0.0  # RMSNorm multiplies by (offset + weight): Gemma's 1 + w
    embed_scale: float = 1.0  # word embeddings multiplied by this (Gemma: sqrt(hidden_size))
    sandwich_norms: bool = False  # Gemma 2/3: a norm after attention and after the MLP as well
    qk_norm: bool = False  # Gemma 3: RMSNorm of each query and key head before the rotation
    attn_scale: float | None = None  # None: head_dim ** -0.5 (Gemma 2/3: query_pre_attn_scalar ** -0.5)
    attn_softcap: float | None = None  # Gemma 2: scores -> cap * tanh(scores / cap)
    final_softcap: float | None = None  # Gemma 2: the causal-LM logits likewise
    parallel: bool = False  # Phi-1.5/2: x + attn(norm(x)) + mlp(norm(x)), one norm
    lm_head_bias: bool = False  # Phi-1.5/2
    embed_dropout: float = 0.0
    attention_dropout: float = 0.0
    residual_dropout: float = 0.0
    pad_token_id: int | None = None
    num_labels: int = 2
    dtype: str = "float32"  # what the layers compute in (softmax and norms: float32 always)
    param_dtype: str = "float32"  # what the parameters are stored in (a checkpoint is cast to it)

    @classmethod
    def from_hf(cls, hf_config: dict[str, Any], num_labels: int | None = None) -> "DecoderConfig":
        """Build from the dict of a ``config.json``, rejecting what the port cannot compute."""
        model_type = hf_config.get("model_type")
        if model_type not in HF_DEFAULTS:
            raise JaxRobustError(f"unsupported decoder model_type={model_type!r}; supported: {', '.join(DECODER_TYPES)}")
        get = lambda key: hf_config.get(key, HF_DEFAULTS[model_type].get(key))
        labels = num_labels if num_labels is not None else hf_num_labels(hf_config)
        if labels < 1:
            raise JaxRobustError(f"num_labels must be >= 1, got {labels}")
        fields = _gpt2(get) if model_type == "gpt2" else _llama_style(model_type, get, hf_config)
        if fields["act"] not in ACTIVATIONS:
            raise JaxRobustError(f"config attribute hidden_act={fields['act']!r} is not supported; use one of {ACTIVATIONS}")
        if fields["num_heads"] % fields["num_kv_heads"]:
            raise JaxRobustError("config num_attention_heads is not a multiple of num_key_value_heads")
        return cls(model_type=model_type, pad_token_id=get("pad_token_id"), num_labels=labels, **fields)


def _reject(model_type: str, name: str, value) -> None:
    raise JaxRobustError(f"config attribute {name}={value!r} is not supported by the {model_type} port")


def _gpt2(get) -> dict:
    for name in ("scale_attn_by_inverse_layer_idx", "add_cross_attention"):
        if get(name):
            _reject("gpt2", name, get(name))
    if not get("scale_attn_weights"):
        _reject("gpt2", "scale_attn_weights", False)
    hidden, heads = get("n_embd"), get("n_head")
    if hidden % heads:
        raise JaxRobustError("config n_embd is not a multiple of n_head")
    return dict(
        vocab_size=get("vocab_size"), hidden_size=hidden, num_layers=get("n_layer"), num_heads=heads, num_kv_heads=heads,
        head_dim=hidden // heads, intermediate_size=get("n_inner") or 4 * hidden, act=get("activation_function"),
        norm="layer", norm_eps=get("layer_norm_epsilon"), positions="learned", max_position_embeddings=get("n_positions"),
        mlp="plain", qkv_bias=True, out_bias=True, mlp_bias=True, tie_word_embeddings=bool(get("tie_word_embeddings")),
        layer_windows=(None,) * get("n_layer"), embed_dropout=get("embd_pdrop"), attention_dropout=get("attn_pdrop"),
        residual_dropout=get("resid_pdrop"),
    )


def _rope(model_type: str, get, hf_config: dict) -> tuple[float, tuple | None]:
    """``(theta, llama3 scaling or None)`` from ``rope_parameters`` (transformers 5) or
    ``rope_theta`` / ``rope_scaling`` (older files)."""
    params = hf_config.get("rope_parameters") or {}
    scaling = hf_config.get("rope_scaling") or {}
    theta = params.get("rope_theta", get("rope_theta"))
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if model_type == "phi3" and kind in ("su", "yarn", "longrope"):
        _reject(model_type, "rope_scaling", {"rope_type": "longrope"})  # Phi-3's 128k variants
    if kind == "default":
        return float(theta), None
    if kind != "llama3":
        _reject(model_type, "rope_scaling", {"rope_type": kind})
    p = {**scaling, **params}
    return float(theta), (float(p["factor"]), float(p["low_freq_factor"]), float(p["high_freq_factor"]),
                          int(p["original_max_position_embeddings"]))


def _llama_style(model_type: str, get, hf_config: dict) -> dict:
    heads, hidden, layers = get("num_attention_heads"), get("hidden_size"), get("num_hidden_layers")
    # Gemma 3 keeps a rotary setting per layer type (_gemma3_rope).
    phi = model_type == "phi"  # Phi-1.5/2: LayerNorm, biases, a plain MLP beside attention
    theta, llama3 = (get("rope_theta"), None) if model_type == "gemma3_text" else _rope(model_type, get, hf_config)
    if model_type in ("gemma2", "gemma3_text"):
        pattern = get("sliding_window_pattern") or 2  # Gemma 2: every other layer, from the first
        types = get("layer_types") or ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]
        windows = tuple(get("sliding_window") if t == "sliding_attention" else None for t in types)
    elif model_type == "qwen2":
        # Sliding windows only with use_sliding_window, on the layers layer_types names (else from
        # max_window_layers on), as transformers' Qwen2Config derives them.
        types = get("layer_types") or [
            "sliding_attention" if get("use_sliding_window") and i >= get("max_window_layers") else "full_attention"
            for i in range(layers)]
        windows = tuple(get("sliding_window") if t == "sliding_attention" else None for t in types)
    else:
        windows = (get("sliding_window"),) * layers
    if model_type == "phi" and get("qk_layernorm"):
        _reject(model_type, "qk_layernorm", True)
    head_dim = get("head_dim") or hidden // heads
    partial = (hf_config.get("rope_parameters") or {}).get("partial_rotary_factor", get("partial_rotary_factor") or 1.0)
    gemma = _gemma(model_type, get, hf_config, types if model_type == "gemma3_text" else None) if model_type in GEMMAS else {}
    return dict(
        vocab_size=get("vocab_size"), hidden_size=hidden, num_layers=layers, num_heads=heads,
        num_kv_heads=get("num_key_value_heads") or heads, head_dim=head_dim,
        intermediate_size=get("intermediate_size"), act=get("hidden_activation") or get("hidden_act"),
        norm="layer" if phi else "rms", norm_eps=get("layer_norm_eps") if phi else get("rms_norm_eps"),
        positions="rotary", max_position_embeddings=get("max_position_embeddings"), mlp="plain" if phi else "gated",
        qkv_bias=True if model_type in ("qwen2", "phi") else bool(get("attention_bias")),
        out_bias=phi or (False if model_type == "qwen2" else bool(get("attention_bias"))), parallel=phi, lm_head_bias=phi,
        mlp_bias=phi or (bool(get("mlp_bias")) if model_type == "llama" else False),
        tie_word_embeddings=bool(get("tie_word_embeddings")), rope_theta=theta, rope_llama3=llama3,
        rotary_dim=None if partial == 1.0 else int(head_dim * partial),
        layer_windows=windows, attention_dropout=get("attention_dropout"),
        embed_dropout=get("embd_pdrop") or 0.0, residual_dropout=get("resid_pdrop") or 0.0, **gemma,
    )


def _gemma(model_type: str, get, hf_config: dict, types: list[str] | None) -> dict:
    """The Gemma fields of :class:`DecoderConfig` (``types``: Gemma 3's layer types)."""
    out = dict(norm_offset=1.0, embed_scale=get("hidden_size") ** 0.5)
    if model_type == "gemma":
        return out
    out.update(sandwich_norms=True, attn_scale=get("query_pre_attn_scalar") ** -0.5,
               attn_softcap=get("attn_logit_softcapping"), final_softcap=get("final_logit_softcapping"))
    if model_type == "gemma3_text":
        out["qk_norm"] = True
        out["layer_rope"] = tuple(_gemma3_rope(get, hf_config, t) for t in types)
    return out


def _gemma3_rope(get, hf_config: dict, layer_type: str) -> tuple[float, float]:
    """``(theta, linear factor)`` of a Gemma 3 layer type: ``rope_parameters[layer_type]``
    (transformers 5), else ``rope_theta`` and ``rope_scaling`` for full attention and
    ``rope_local_base_freq`` for sliding layers (older files)."""
    params = (hf_config.get("rope_parameters") or {}).get(layer_type)
    if params is None:
        sliding = layer_type == "sliding_attention"
        scaling = {} if sliding else (hf_config.get("rope_scaling") or {})
        params = dict(scaling, rope_theta=get("rope_local_base_freq") if sliding else get("rope_theta"))
    kind = params.get("rope_type") or params.get("type") or "default"
    if kind not in ("default", "linear"):
        _reject("gemma3_text", "rope_scaling", {"rope_type": kind})
    return float(params["rope_theta"]), float(params.get("factor", 1.0)) if kind == "linear" else 1.0


def llama3_inv_freq(inv_freq, factor: float, low: float, high: float, original: int):
    """Llama 3.x's rescaled rotary frequencies (NumPy ``[D/2]``), as transformers computes them:
    long wavelengths divided by ``factor``, short ones kept, the band between interpolated."""
    import numpy as np

    low_wavelen, high_wavelen = original / low, original / high
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled)
