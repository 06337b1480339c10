"""The encoder configuration, built from (and checked against) a Hugging Face config.

Every Hugging Face attribute that changes the computation is either ported or rejected here: a
checkpoint that needs something the port lacks fails at load time instead of giving wrong numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxrobust.errors import JaxRobustError

# model_type -> the family details the shared encoder needs.
#   positions: "absolute" (0..L-1) or "padded" (RoBERTa/MPNet: pad_id+1.. over real tokens only)
#   head: "pooler" (BERT: [CLS] -> dense -> tanh pooler, dropout, linear) or
#         "dense_tanh" (RoBERTa/MPNet classification head: <s> -> dense -> tanh -> linear)
FAMILIES: dict[str, dict[str, Any]] = {
    "bert": dict(positions="absolute", head="pooler", relative_buckets=0, prefix="bert."),
    "roberta": dict(positions="padded", head="dense_tanh", relative_buckets=0, prefix="roberta."),
    "mpnet": dict(positions="padded", head="dense_tanh", relative_buckets=32, prefix="mpnet."),
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

    @property
    def family(self) -> dict[str, Any]:
        return FAMILIES[self.model_type]

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_hf(cls, hf_config, num_labels: int | None = None) -> "EncoderConfig":
        """Build from a ``transformers`` config object, rejecting what the port cannot compute."""
        model_type = getattr(hf_config, "model_type", None)
        if model_type not in FAMILIES:
            raise JaxRobustError(
                f"unsupported architecture model_type={model_type!r}; supported: {', '.join(FAMILIES)}"
            )
        for name, allowed in _UNSUPPORTED_UNLESS.items():
            value = getattr(hf_config, name, None)
            if value not in allowed:
                raise JaxRobustError(f"config attribute {name}={value!r} is not supported by the {model_type} port")
        if hf_config.hidden_act not in ACTIVATIONS:
            raise JaxRobustError(
                f"config attribute hidden_act={hf_config.hidden_act!r} is not supported; use one of {ACTIVATIONS}"
            )
        if hf_config.hidden_size % hf_config.num_attention_heads:
            raise JaxRobustError("config hidden_size is not a multiple of num_attention_heads")
        if model_type == "mpnet" and hf_config.relative_attention_num_buckets != 32:
            # transformers always buckets relative positions into 32, whatever the table size.
            raise JaxRobustError("config attribute relative_attention_num_buckets must be 32 for mpnet")
        labels = num_labels if num_labels is not None else hf_config.num_labels
        if labels < 1:
            raise JaxRobustError(f"num_labels must be >= 1, got {labels}")
        hidden_dropout = hf_config.hidden_dropout_prob
        classifier_dropout = getattr(hf_config, "classifier_dropout", None)
        return cls(
            model_type=model_type,
            vocab_size=hf_config.vocab_size,
            hidden_size=hf_config.hidden_size,
            num_layers=hf_config.num_hidden_layers,
            num_heads=hf_config.num_attention_heads,
            intermediate_size=hf_config.intermediate_size,
            hidden_act=hf_config.hidden_act,
            max_position_embeddings=hf_config.max_position_embeddings,
            type_vocab_size=0 if model_type == "mpnet" else hf_config.type_vocab_size,
            layer_norm_eps=hf_config.layer_norm_eps,
            hidden_dropout=hidden_dropout,
            attention_dropout=hf_config.attention_probs_dropout_prob,
            # MPNet's head ignores classifier_dropout; BERT and RoBERTa fall back to hidden dropout.
            classifier_dropout=hidden_dropout if classifier_dropout is None or model_type == "mpnet" else classifier_dropout,
            # MPNet hard-codes its padding index to 1 whatever the config says.
            pad_token_id=1 if model_type == "mpnet" else (hf_config.pad_token_id or 0),
            num_labels=labels,
        )
