"""GGUF import: a tiny random Llama written as llama.cpp writes it (its tensor names, its query/key
row permutation, its metadata keys) loads with the logits of the PyTorch model it came from; bad
files fail with one line; the SmolLM2 bundle matches transformers' own loading of its GGUF file."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

from jaxrobust import cli  # noqa: E402
from jaxrobust.errors import JaxRobustError  # noqa: E402
from jaxrobust.models import gguf_import, load_classifier  # noqa: E402

V = 96
SETTINGS = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)
# Hugging Face name -> llama.cpp name, as llama.cpp's convert_hf_to_gguf.py writes a Llama.
LLAMA_CPP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
         "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


# As llama.cpp's converter writes a Gemma 3: no permutation, RMSNorm scales stored as 1 + w.
GEMMA3_SETTINGS = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=6, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=8, max_position_embeddings=64, sliding_window=4, rms_norm_eps=1e-6)
GEMMA3_LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "post_attention_norm",
                "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
                "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm", "self_attn.q_proj": "attn_q",
                "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter's permutation of a query/key projection (each head's two rotary halves interleaved)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _writer(model, path, arch: str, rope_theta: float):
    """A GGUF writer of architecture ``arch`` holding ``model``'s settings as llama.cpp names them."""
    c = model.config
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_rope_freq_base(rope_theta)  # transformers 5 keeps it in rope_parameters
    writer.add_vocab_size(c.vocab_size)  # the tiny files have no vocabulary to count
    return writer


def _close(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_gguf(model, path) -> None:
    c = model.config
    writer = _writer(model, path, "llama", SETTINGS["rope_theta"])
    for name, tensor in model.state_dict().items():
        w = tensor.numpy().astype(np.float32)
        if name.startswith("model.layers."):
            i, rest = name.removeprefix("model.layers.").split(".", 1)
            module, kind = rest.rsplit(".", 1)
            if module == "self_attn.q_proj":
                w = llama_cpp_permute(w, c.num_attention_heads)
            elif module == "self_attn.k_proj":
                w = llama_cpp_permute(w, c.num_key_value_heads)
            name = f"blk.{i}.{LAYER[module]}.{kind}"
        else:
            name = LLAMA_CPP[name]
        writer.add_tensor(name, w)
    _close(writer)


def _write_gemma3_gguf(model, path) -> None:
    c = model.config
    writer = _writer(model, path, "gemma3", 1e6)  # Gemma 3's global rope base (transformers' default, as in the 270M model)
    writer.add_key_length(c.head_dim)
    writer.add_value_length(c.head_dim)
    writer.add_sliding_window(c.sliding_window)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue  # tied: llama.cpp writes no output.weight
        w = tensor.numpy().astype(np.float32)
        if name.endswith("norm.weight"):
            w = w + 1.0
        if name.startswith("model.layers."):
            i, rest = name.removeprefix("model.layers.").split(".", 1)
            module, kind = rest.rsplit(".", 1)
            name = f"blk.{i}.{GEMMA3_LAYER[module]}.{kind}"
        else:
            name = LLAMA_CPP[name]
        writer.add_tensor(name, w)
    _close(writer)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """A tiny random LlamaForCausalLM and a folder holding only its GGUF file."""
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM._from_config(transformers.LlamaConfig(**SETTINGS), attn_implementation="eager").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    folder = tmp_path_factory.mktemp("gguf")
    _write_gguf(model, folder / "tiny.gguf")
    return model, folder


def test_permutation_is_undone():
    w = np.arange(8 * 16 * 3, dtype=np.float32).reshape(8 * 16, 3)
    assert np.array_equal(gguf_import.unpermute(llama_cpp_permute(w, 8), 8), w)
    assert not np.array_equal(llama_cpp_permute(w, 8), w)


def _max_logit_difference(model, loaded) -> float:
    """Max |causal-LM logit difference| of the source ``model`` and its ``loaded`` GGUF on a right-padded batch."""
    ids = np.random.default_rng(0).integers(1, V, (2, 11))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0  # right padding
    with torch.no_grad():
        ref = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    out = loaded.model(jnp.asarray(ids), jnp.asarray(mask))
    ours = np.asarray(loaded.model.lm_logits(out.last_hidden_state))
    return float(np.abs(ours - ref)[mask.astype(bool)].max())


def test_a_gguf_folder_loads_with_the_logits_of_its_source_model(tiny_gguf):
    model, folder = tiny_gguf
    loaded = load_classifier(str(folder), 3, tokenizer=False, lm_head=True)
    assert loaded.config.num_kv_heads == 2 and not loaded.config.tie_word_embeddings
    assert _max_logit_difference(model, loaded) < 1e-5


def test_a_gemma3_gguf_loads_with_the_logits_of_its_source_model(tmp_path):
    """Gemma 3 as llama.cpp writes it: norms stored as 1 + w, no row permutation, key_length as the
    head size; six layers, so the sixth is global and the others slide over 4 tokens."""
    torch.manual_seed(0)
    config = transformers.Gemma3TextConfig(**GEMMA3_SETTINGS)
    model = transformers.Gemma3ForCausalLM._from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    _write_gemma3_gguf(model, tmp_path / "tiny.gguf")
    loaded = load_classifier(str(tmp_path), 3, tokenizer=False, lm_head=True)
    assert loaded.config.num_kv_heads == 2 and loaded.config.tie_word_embeddings
    assert _max_logit_difference(model, loaded) < 1e-5


def test_bad_gguf_files_fail_with_one_line(tiny_gguf, tmp_path, capsys):
    _, folder = tiny_gguf
    truncated = tmp_path / "cut"
    truncated.mkdir()
    (truncated / "m.gguf").write_bytes((folder / "tiny.gguf").read_bytes()[:5000])
    with pytest.raises(JaxRobustError, match="not a readable GGUF file"):
        load_classifier(str(truncated), 2, tokenizer=False)
    other = tmp_path / "other"
    other.mkdir()
    writer = gguf.GGUFWriter(str(other / "m.gguf"), "mamba")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), np.float32))
    _close(writer)
    assert cli.main(["parity", str(other)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "GGUF architecture 'mamba' is not supported; supported: llama, gemma3" in err[0]
    with pytest.raises(JaxRobustError, match="holds no tokenizer"):
        load_classifier(str(folder), 2)  # the tiny file carries no vocabulary


def _float64_errors(ref: str) -> tuple[float, float]:
    """Max |logit - float64 logit| over the parity sentences' real tokens, for our float32 forward and
    for transformers' float32 loading of the bundle's GGUF file; the float64 one is transformers'."""
    from transformers import AutoModelForCausalLM

    from jaxrobust.parity import MAX_LENGTH, SENTENCES

    loaded = load_classifier(ref, 2, lm_head=True)
    g = gguf_import.gguf_file(loaded.path)
    batch = loaded.tokenizer(SENTENCES, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    real = mask.astype(bool)
    logits = {}
    for dtype in (torch.float32, torch.float64):
        model = AutoModelForCausalLM.from_pretrained(os.fspath(g.parent), gguf_file=g.name, dtype=dtype).eval()
        with torch.no_grad():
            logits[dtype] = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
        del model
    ours = np.asarray(loaded.model.lm_logits(loaded.model(jnp.asarray(ids), jnp.asarray(mask)).last_hidden_state))
    truth = logits[torch.float64]
    return float(np.abs(ours - truth)[real].max()), float(np.abs(logits[torch.float32] - truth)[real].max())


# #21: on the logits the two float32 forwards sit on either side of 1e-4 depending on the CPU's rounding
# (1.001e-4 on one 2-core AMD EPYC machine, within 1e-4 on another); each is within 7.2e-5 of a float64 one.
KNOWN_SMOLLM2_GGUF_DIFF = 1.001e-4


@pytest.mark.assets
@pytest.mark.slow
def test_the_smollm2_bundle_matches_transformers_loading_of_its_gguf():
    """`parity bundle:smollm2-135m`: causal-LM logits of the converted bundle against transformers'
    model and tokenizer read from the GGUF file itself, at the issue's 1e-4. Up to the figure recorded in
    #21 it is reported as the known failure (xfail), not a pass; anything larger fails."""
    from jaxrobust.parity import TOLERANCE, run_parity

    diff = run_parity("bundle:smollm2-135m").max_abs_diff
    if TOLERANCE < diff <= KNOWN_SMOLLM2_GGUF_DIFF * (1 + 1e-3):
        pytest.xfail(f"measured {diff:.4g} on the logits, above 1e-4 by the rounding recorded in #21")
    assert diff <= TOLERANCE


@pytest.mark.assets
@pytest.mark.slow
def test_our_float32_smollm2_is_about_as_close_to_float64_as_transformers_float32():
    """Our float32 forward's error against a float64 evaluation is of the size of transformers' own
    float32 error: measured 8.9e-5 against 7.2e-5 (1.24x; XLA's Eigen dots are a little less accurate
    than torch's MKL ones). With XLA's YNNPACK dots it was 2.1x (1.5e-4, first four sentences)."""
    ours, theirs = _float64_errors("bundle:smollm2-135m")
    assert ours <= 1.5 * theirs


@pytest.mark.assets
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("JAXROBUST_ACCEPT_GEMMA3_270M") != "1",
                    reason="bundle:gemma3-270m is under the Gemma Terms of Use: set JAXROBUST_ACCEPT_GEMMA3_270M=1 to run")
def test_the_gemma3_bundle_matches_transformers_and_float64():
    """`parity bundle:gemma3-270m` (tokens equal, logits within 1e-4 of transformers' own loading),
    and our float32 logits as close to a float64 forward as transformers' float32 ones (measured 5.9e-5
    against 8.7e-5; the tanh GELU of jax.nn put ours at 1.4e-4)."""
    from jaxrobust.parity import TOLERANCE, run_parity

    assert run_parity("bundle:gemma3-270m").logits_diff <= TOLERANCE
    ours, theirs = _float64_errors("bundle:gemma3-270m")
    assert ours <= theirs
