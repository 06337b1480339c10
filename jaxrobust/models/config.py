"""The encoder configuration, built from (and checked against) a Hugging Face ``config.json``.

Every Hugging Face attribute that changes the computation is either ported or rejected here: a
checkpoint that needs something the port lacks fails at load time instead of giving wrong numbers.
The file is read as plain JSON, not through ``transformers.AutoConfig``: that imports PyTorch
(seconds of every command's start) for nothing the port needs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxrobust.errors import JaxRobustError

# model_type -> what the shared encoder computes differently per family (the rest of a family is in
# :mod:`.registry`).
#   positions: "absolute" (0..L-1) or "padded" (RoBERTa/MPNet: pad_id+1.. over real tokens only)
#   head: "pooler" (BERT: [CLS] -> dense -> tanh pooler, dropout, linear) or
#         "dense_tanh" (RoBERTa/MPNet classification head: <s> -> dense -> tanh -> linear)
ENCODER_FAMILIES: dict[str, dict[str, Any]] = {
    "bert": dict(positions="absolute", head="pooler", relative_buckets=0),
    "roberta": dict(positions="padded", head="dense_tanh", relative_buckets=0),
    "mpnet": dict(positions="padded", head="dense_tanh", relative_buckets=32),
}

# The defaults of transformers' config classes for the keys read here: a config.json that
# transformers wrote lists them all, a hand-written one may leave them out (checked in the tests).
_COMMON_DEFAULTS = dict(
    hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=512, layer_norm_eps=1e-12,
)
HF_DEFAULTS: dict[str, dict[str, Any]] = {
    "bert": dict(_COMMON_DEFAULTS, vocab_size=30522, type_vocab_size=2, pad_token_id=0, classifier_dropout=None),
    "roberta": dict(_COMMON_DEFAULTS, vocab_size=50265, type_vocab_size=2, pad_token_id=1, classifier_dropout=None),
    "mpnet": dict(_COMMON_DEFAULTS, vocab_size=30527, pad_token_id=1, relative_attention_num_buckets=32),
}

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish")

# Attributes whose non-default value changes the computation and is not ported: name -> allowed.
_UNSUPPORTED_UNLESS = {
    "position_embedding_type": ("absolute", None),
    "is_decoder": (False, None),
    "add_cross_attention": (False, None),
    "problem_type": ("single_label_classification", None),
}


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Everything the Flax encoder and its classification head need, nothing more."""

    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    hidden_act: str
    max_position_embeddings: int
    type_vocab_size: int  # 0: no token-type embedding (MPNet)
    layer_norm_eps: float
    hidden_dropout: float
    attention_dropout: float
    classifier_dropout: float
    pad_token_id: int
    num_labels: int
    dtype: str = "float32"  # what the layers compute in (softmax and norms: float32 always)
    param_dtype: str = "float32"  # what the parameters are stored in (a checkpoint is cast to it)

    @property
    def family(self) -> dict[str, Any]:
        return ENCODER_FAMILIES[self.model_type]

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_hf(cls, hf_config: dict[str, Any], num_labels: int | None = None) -> "EncoderConfig":
        """Build from the dict of a ``config.json``, rejecting what the port cannot compute."""
        model_type = hf_config.get("model_type")
        if model_type not in ENCODER_FAMILIES:
            raise JaxRobustError(
                f"unsupported architecture model_type={model_type!r}; supported: {', '.join(ENCODER_FAMILIES)}"
            )
        for name, allowed in _UNSUPPORTED_UNLESS.items():
            value = hf_config.get(name)
            if value not in allowed:
                raise JaxRobustError(f"config attribute {name}={value!r} is not supported by the {model_type} port")
        get = lambda key: hf_config.get(key, HF_DEFAULTS[model_type].get(key))
        if get("hidden_act") not in ACTIVATIONS:
            raise JaxRobustError(
                f"config attribute hidden_act={get('hidden_act')!r} is not supported; use one of {ACTIVATIONS}"
            )
        if get("hidden_size") % get("num_attention_heads"):
            raise JaxRobustError("config hidden_size is not a multiple of num_attention_heads")
        if model_type == "mpnet" and get("relative_attention_num_buckets") != 32:
            # transformers always buckets relative positions into 32, whatever the table size.
            raise JaxRobustError("config attribute relative_attention_num_buckets must be 32 for mpnet")
        labels = num_labels if num_labels is not None else hf_num_labels(hf_config)
        if labels < 1:
            raise JaxRobustError(f"num_labels must be >= 1, got {labels}")
        hidden_dropout = get("hidden_dropout_prob")
        classifier_dropout = get("classifier_dropout")
        return cls(
            model_type=model_type,
            vocab_size=get("vocab_size"),
            hidden_size=get("hidden_size"),
            num_layers=get("num_hidden_layers"),
            num_heads=get("num_attention_heads"),
            intermediate_size=get("intermediate_size"),
            hidden_act=get("hidden_act"),
            max_position_embeddings=get("max_position_embeddings"),
            type_vocab_size=0 if model_type == "mpnet" else get("type_vocab_size"),
            layer_norm_eps=get("layer_norm_eps"),
            hidden_dropout=hidden_dropout,
            attention_dropout=get("attention_probs_dropout_prob"),
            # MPNet's head ignores classifier_dropout; BERT and RoBERTa fall back to hidden dropout.
            classifier_dropout=hidden_dropout if classifier_dropout is None or model_type == "mpnet" else classifier_dropout,
            # MPNet hard-codes its padding index to 1 whatever the config says.
            pad_token_id=1 if model_type == "mpnet" else (get("pad_token_id") or 0),
            num_labels=labels,
        )


def hf_num_labels(hf_config: dict[str, Any]) -> int:
    """The number of labels transformers reads from a ``config.json``: its ``id2label`` if any, else
    ``num_labels``, else 2."""
    return len(hf_config["id2label"]) if hf_config.get("id2label") else hf_config.get("num_labels", 2)


DTYPES = ("float32", "bfloat16")


def with_dtypes(cfg, dtype: str = "float32", param_dtype: str = "float32"):
    """``cfg`` (an encoder or decoder config) computing in ``dtype`` with parameters in ``param_dtype``."""
    for name, value in (("dtype", dtype), ("param_dtype", param_dtype)):
        if value not in DTYPES:
            raise JaxRobustError(f"{name} must be one of {', '.join(DTYPES)}, got {value!r}")
    return dataclasses.replace(cfg, dtype=dtype, param_dtype=param_dtype)
