"""llama.cpp GGUF files -> a Hugging Face config, HF-named float32 tensors and a fast tokenizer.

A GGUF holds the weights (often quantised), the architecture's settings under llama.cpp's key
names and the tokenizer's vocabulary and merges. :func:`read_config`, :func:`read_tensors` and
:func:`read_tokenizer` turn them into what a Hugging Face directory holds, so that the
rule tables of :mod:`.weight_rules` fill the model unchanged:

* metadata ``<arch>.<key>`` -> ``config.json`` keys (:data:`CONFIG_KEYS`);
* tensors dequantised to float32 in NumPy by the ``gguf`` package (no torch), renamed
  (:data:`TENSOR_NAMES`), with llama.cpp's row permutation of the query and key projections undone
  (its converter interleaves each head's two rotary halves for its own rope kernel);
* the tokenizer built by transformers' own GGUF converter (the one ``from_pretrained(...,
  gguf_file=...)`` uses, so the PyTorch reference tokenises identically).

Architectures: ``llama`` (Llama 2/3, SmolLM2, ...) and ``gemma3`` (Gemma 3 text models). Others are
refused by name.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from jaxrobust.errors import JaxRobustError

# llama.cpp metadata key (after "<arch>.") -> Hugging Face config key, per architecture.
_SHARED_KEYS = {
    "context_length": "max_position_embeddings",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "embedding_length": "hidden_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "rope.freq_base": "rope_theta",
}
CONFIG_KEYS = {
    "llama": {**_SHARED_KEYS, "rope.dimension_count": "head_dim"},
    # Gemma 3's head size is its key length, as transformers' GGUF loader reads it.
    "gemma3": {**_SHARED_KEYS, "attention.key_length": "head_dim", "attention.sliding_window": "sliding_window"},
}

# llama.cpp tensor name -> Hugging Face name (``\1``: the layer), per architecture.
_SHARED = [
    (r"token_embd\.weight", "model.embed_tokens.weight"),
    (r"output_norm\.weight", "model.norm.weight"),
    (r"blk\.(\d+)\.attn_norm\.weight", r"model.layers.\1.input_layernorm.weight"),
    (r"blk\.(\d+)\.attn_q\.weight", r"model.layers.\1.self_attn.q_proj.weight"),
    (r"blk\.(\d+)\.attn_k\.weight", r"model.layers.\1.self_attn.k_proj.weight"),
    (r"blk\.(\d+)\.attn_v\.weight", r"model.layers.\1.self_attn.v_proj.weight"),
    (r"blk\.(\d+)\.attn_output\.weight", r"model.layers.\1.self_attn.o_proj.weight"),
    (r"blk\.(\d+)\.ffn_gate\.weight", r"model.layers.\1.mlp.gate_proj.weight"),
    (r"blk\.(\d+)\.ffn_up\.weight", r"model.layers.\1.mlp.up_proj.weight"),
    (r"blk\.(\d+)\.ffn_down\.weight", r"model.layers.\1.mlp.down_proj.weight"),
]
TENSOR_NAMES = {
    "llama": _SHARED + [
        (r"output\.weight", "lm_head.weight"),
        (r"blk\.(\d+)\.ffn_norm\.weight", r"model.layers.\1.post_attention_layernorm.weight"),
    ],
    # Gemma 3 normalises each branch's input and output, and the queries and keys.
    "gemma3": _SHARED + [
        (r"blk\.(\d+)\.post_attention_norm\.weight", r"model.layers.\1.post_attention_layernorm.weight"),
        (r"blk\.(\d+)\.ffn_norm\.weight", r"model.layers.\1.pre_feedforward_layernorm.weight"),
        (r"blk\.(\d+)\.post_ffw_norm\.weight", r"model.layers.\1.post_feedforward_layernorm.weight"),
        (r"blk\.(\d+)\.attn_q_norm\.weight", r"model.layers.\1.self_attn.q_norm.weight"),
        (r"blk\.(\d+)\.attn_k_norm\.weight", r"model.layers.\1.self_attn.k_norm.weight"),
    ],
}
HF_MODEL_TYPE = {"llama": "llama", "gemma3": "gemma3_text"}  # a Gemma 3 GGUF holds the text model only
HF_ARCHITECTURE = {"llama": "LlamaForCausalLM", "gemma3": "Gemma3ForCausalLM"}
# llama.cpp interleaves each head's rotary halves in the query and key rows of these architectures
# only (its converter permutes Llama's checkpoints, not Gemma's).
PERMUTED_QK = {"llama"}
# llama.cpp stores Gemma's RMSNorm scale as 1 + w (its kernel multiplies by the weight); Hugging Face
# keeps w and adds 1 in the layer.
NORM_PLUS_ONE = {"gemma3"}


def gguf_file(path: Path) -> Path | None:
    """The one ``.gguf`` file of directory ``path`` (None: none; two or more: an error)."""
    found = sorted(Path(path).glob("*.gguf"))
    if len(found) > 1:
        raise JaxRobustError(f"{path} holds several GGUF files ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


@functools.lru_cache(maxsize=2)
def _reader(path: Path):
    """The parsed file (its metadata parse takes a second or two: read once for config, tensors and tokenizer)."""
    import gguf

    try:
        return gguf.GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError) as e:  # a truncated or foreign file
        raise JaxRobustError(f"{path} is not a readable GGUF file ({e})") from None


def _field(reader, key: str):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def read_config(path: Path) -> dict:
    """The Hugging Face ``config.json`` of GGUF file ``path``."""
    reader = _reader(Path(path))
    arch = _field(reader, "general.architecture")
    if arch not in CONFIG_KEYS:
        raise JaxRobustError(f"{path}: GGUF architecture {arch!r} is not supported; supported: {', '.join(CONFIG_KEYS)}")
    config = {"model_type": HF_MODEL_TYPE[arch], "architectures": [HF_ARCHITECTURE[arch]]}
    for key, hf_key in CONFIG_KEYS[arch].items():
        value = _field(reader, f"{arch}.{key}")
        if value is not None:
            config[hf_key] = value
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    config["vocab_size"] = _field(reader, f"{arch}.vocab_size") or (len(tokens.data) if tokens is not None else None)
    # llama.cpp writes no output.weight for a head tied to the embedding.
    config["tie_word_embeddings"] = not any(t.name == "output.weight" for t in reader.tensors)
    for name in ("bos", "eos", "padding"):
        token_id = _field(reader, f"tokenizer.ggml.{name}_token_id")
        if token_id is not None:
            config[f"{'pad' if name == 'padding' else name}_token_id"] = int(token_id)
    return config


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's permutation of a query or key projection ``[heads * head_dim, in]``: it
    stores each head's rows as interleaved pairs (0, d/2, 1, d/2 + 1, ...) instead of two halves."""
    rows = w.shape[0]
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_tensors(path: Path, config: dict) -> dict[str, np.ndarray]:
    """The Hugging Face-named float32 tensors of GGUF file ``path`` (``config``: :func:`read_config`'s)."""
    from gguf import GGMLQuantizationType, quants

    reader = _reader(Path(path))
    arch = _field(reader, "general.architecture")
    names = [(re.compile(p + "$"), hf) for p, hf in TENSOR_NAMES[arch]]
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config.get("num_key_value_heads", config["num_attention_heads"])}
    out, unknown = {}, []
    for t in reader.tensors:
        hf = next((m.expand(h) for p, h in names if (m := p.match(t.name))), None)
        if hf is None:
            unknown.append(t.name)
            continue
        try:
            w = quants.dequantize(t.data, t.tensor_type)
        except NotImplementedError:
            raise JaxRobustError(f"{path}: tensor {t.name} has quantisation type {GGMLQuantizationType(t.tensor_type).name}, "
                                 f"which gguf cannot dequantise here") from None
        w = np.asarray(w, np.float32).reshape(tuple(int(n) for n in reversed(t.shape)))  # GGUF lists dims innermost first
        proj = hf.split(".")[-2]
        if arch in PERMUTED_QK and proj in heads:
            w = unpermute(w, heads[proj])
        if arch in NORM_PLUS_ONE and hf.endswith("norm.weight"):
            w = w - 1.0
        out[hf] = w
    if unknown:
        raise JaxRobustError(f"{path}: unexpected GGUF tensors {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    return out


def read_tokenizer(path: Path):
    """The fast tokenizer GGUF file ``path`` describes, built by transformers' GGUF converter from the
    metadata that the ``gguf`` package reads (transformers' own GGUF reader imports torch)."""
    from transformers import PreTrainedTokenizerFast
    from transformers.integrations.gguf import convert_gguf_tokenizer
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING

    reader = _reader(Path(path))
    groups = {
        group: {name: _field(reader, f"tokenizer.{key}") for key, name in renames.items() if f"tokenizer.{key}" in reader.fields}
        for group, renames in GGUF_TOKENIZER_MAPPING.items()
    }
    tokenizer, settings = groups["tokenizer"], groups["tokenizer_config"]
    if "tokens" not in tokenizer:
        raise JaxRobustError(f"{path}: the GGUF metadata holds no tokenizer (tokenizer.ggml.tokens)")
    if tokenizer.get("tokenizer_type") == "llama":  # as transformers: llama.cpp adds BOS to such a vocabulary
        settings.setdefault("add_bos_token", True)
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"), ("unk_token", "unk_token_id"), ("pad_token", "pad_token_id")):
        if tokenizer.get(key) is not None:
            settings[name] = tokenizer["tokens"][tokenizer[key]]
    try:
        backend, extra = convert_gguf_tokenizer(_field(reader, "general.architecture"), tokenizer)
    except (ValueError, KeyError) as e:
        raise JaxRobustError(f"{path}: cannot build the tokenizer of its GGUF metadata ({str(e).splitlines()[0]})") from None
    return PreTrainedTokenizerFast(tokenizer_object=backend, **settings, **extra)


def convert(path: Path, dest: Path) -> None:
    """Write GGUF file ``path`` into directory ``dest`` as a Hugging Face model (``config.json``,
    float32 ``model.safetensors``, tokenizer files), which every command then loads in a second."""
    import json

    from safetensors.numpy import save_file

    config = read_config(path)
    save_file(read_tensors(path, config), str(dest / "model.safetensors"))
    read_tokenizer(path).save_pretrained(str(dest))
    (dest / "config.json").write_text(json.dumps({**config, "dtype": "float32"}, indent=2) + "\n")
