"""Hugging Face ``model_type`` -> family: what the project reads per architecture, in one table.

A family is its config reader (``from_hf``, which also rejects what the port does not compute), its
Flax module, its weight rules (:mod:`.weight_rules`), the prefix its checkpoints put before the
base-model keys, the checkpoint keys a classifier does not use, transformers' sequence-classifier
class (what an export says it is) and the tokenizer class of a directory whose
``tokenizer_config.json`` names none. Adding a family is a row here, its rule table and, for a new
kind of layer, the fields of its config.
"""

from __future__ import annotations

import dataclasses

from jaxrobust.errors import JaxRobustError
from jaxrobust.models import weight_rules as rules
from jaxrobust.models.config import EncoderConfig
from jaxrobust.models.decoder import DecoderClassifier
from jaxrobust.models.decoder_config import DecoderConfig
from jaxrobust.models.encoder import SequenceClassifier


@dataclasses.dataclass(frozen=True)
class Family:
    model_type: str
    config: type  # EncoderConfig or DecoderConfig
    module: type  # SequenceClassifier or DecoderClassifier
    rules: list  # (regex, NNX paths, transform)
    prefix: str  # before base-model keys (head keys never carry it: weight_rules.HEAD_KEYS)
    ignored: tuple[str, ...]  # regexes of keys a classifier does not use
    hf_class: str  # transformers' sequence classifier
    tokenizer_class: str = ""

    @property
    def is_decoder(self) -> bool:
        return self.config is DecoderConfig


# Buffers and pre-training heads (GPT-2's causal-mask ``attn.bias``/``masked_bias``, rotary
# ``inv_freq``, position and token-type ids, masked-LM heads) and the pooler of encoders whose
# classification head pools by itself (transformers drops it too).
_DECODER_IGNORED = (r".*\.attn\.(masked_)?bias$", r".*rotary_emb\.inv_freq$")
_ENCODER = dict(config=EncoderConfig, module=SequenceClassifier)
_DECODER = dict(config=DecoderConfig, module=DecoderClassifier, ignored=_DECODER_IGNORED, prefix="model.")

FAMILIES: dict[str, Family] = {f.model_type: f for f in [
    Family("bert", **_ENCODER, rules=rules.BERT, prefix="bert.", ignored=(r".*position_ids$", r".*token_type_ids$", r"^cls\..*"),
           hf_class="BertForSequenceClassification", tokenizer_class="BertTokenizer"),
    Family("roberta", **_ENCODER, rules=rules.ROBERTA, prefix="roberta.",
           ignored=(r".*position_ids$", r".*token_type_ids$", r"^lm_head\..*", r"^pooler\..*"),
           hf_class="RobertaForSequenceClassification", tokenizer_class="RobertaTokenizer"),
    Family("mpnet", **_ENCODER, rules=rules.MPNET, prefix="mpnet.", ignored=(r".*position_ids$", r"^lm_head\..*", r"^pooler\..*"),
           hf_class="MPNetForSequenceClassification", tokenizer_class="MPNetTokenizer"),
    Family("gpt2", **{**_DECODER, "prefix": "transformer."}, rules=rules.GPT2 + rules.HEADS,
           hf_class="GPT2ForSequenceClassification", tokenizer_class="GPT2Tokenizer"),
    Family("llama", **_DECODER, rules=rules.LLAMA + rules.HEADS, hf_class="LlamaForSequenceClassification", tokenizer_class="LlamaTokenizer"),
    Family("mistral", **_DECODER, rules=rules.LLAMA + rules.HEADS, hf_class="MistralForSequenceClassification", tokenizer_class="LlamaTokenizer"),
    Family("qwen2", **_DECODER, rules=rules.LLAMA + rules.HEADS, hf_class="Qwen2ForSequenceClassification", tokenizer_class="Qwen2Tokenizer"),
    Family("phi3", **_DECODER, rules=rules.PHI3 + rules.HEADS, hf_class="Phi3ForSequenceClassification"),
    Family("gemma", **_DECODER, rules=rules.LLAMA + rules.HEADS, hf_class="GemmaForSequenceClassification"),
    Family("gemma2", **_DECODER, rules=rules.GEMMA2 + rules.HEADS, hf_class="Gemma2ForSequenceClassification"),
    Family("gemma3_text", **_DECODER, rules=rules.GEMMA3 + rules.HEADS, hf_class="Gemma3TextForSequenceClassification"),
    Family("phi", **_DECODER, rules=rules.PHI + rules.HEADS, hf_class="PhiForSequenceClassification"),
]}


def family(model_type: str | None, source: str = "") -> Family:
    """The family of ``model_type``; an unsupported one is named with those supported."""
    if model_type not in FAMILIES:
        where = f" in {source}" if source else ""
        raise JaxRobustError(f"unsupported architecture model_type={model_type!r}{where}; supported: {', '.join(FAMILIES)}")
    return FAMILIES[model_type]
