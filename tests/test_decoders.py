"""Decoder families against transformers' own PyTorch models: tiny random checkpoints saved by
transformers, loaded by jaxrobust, compared on right-padded batches (sequence-classification and
causal-LM logits) and in the gradient with respect to the input embeddings. Each family's case
exercises its peculiarity: fused QKV and learned positions (GPT-2), grouped KV heads and untied
embeddings (Llama), Llama 3's rope scaling with a head size that is not hidden / heads and biases
(Llama 3), sliding windows shorter than the sequence (Mistral, Qwen2 with q/k/v biases), fused
q/k/v and gate/up projections with partial rotary and a sliding window (Phi-3), ``1 + w`` norms and
scaled embeddings (Gemma), attention and final-logit soft-capping and sandwich norms with
alternating sliding windows (Gemma 2), QK norms and a rotary base per layer type with linear
scaling on the global layers (Gemma 3), parallel attention and MLP with partial rotary and a biased
LM head (Phi-2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from jaxrobust.errors import JaxRobustError  # noqa: E402
from jaxrobust.models import load_classifier  # noqa: E402
from jaxrobust.models.decoder_config import DecoderConfig  # noqa: E402

V, PAD = 96, 0
SMALL = dict(vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=64, pad_token_id=PAD)
CASES = {
    "gpt2": ("GPT2", dict(vocab_size=V, n_positions=64, n_embd=32, n_layer=2, n_head=4, pad_token_id=PAD,
                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)),
    "llama": ("Llama", dict(SMALL, num_key_value_heads=2, tie_word_embeddings=False)),
    "llama3": ("Llama", dict(SMALL, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True, attention_bias=True,
                             mlp_bias=True, rope_theta=500000.0,
                             rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                               original_max_position_embeddings=8))),
    "mistral": ("Mistral", dict(SMALL, num_key_value_heads=2, sliding_window=4, tie_word_embeddings=False)),
    "qwen2": ("Qwen2", dict(SMALL, num_key_value_heads=2, use_sliding_window=True, sliding_window=3, max_window_layers=1,
                            tie_word_embeddings=True)),
    "phi3": ("Phi3", dict(SMALL, num_key_value_heads=2, partial_rotary_factor=0.5, sliding_window=5, tie_word_embeddings=False)),
    "gemma": ("Gemma", dict(SMALL, num_key_value_heads=1, head_dim=16)),
    "gemma2": ("Gemma2", dict(SMALL, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=12, sliding_window=4,
                              attn_logit_softcapping=0.5, final_logit_softcapping=0.8)),
    "gemma3": ("Gemma3Text", dict(SMALL, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=12, sliding_window=4,
                                  sliding_window_pattern=2, rope_theta=50000.0, rope_local_base_freq=100.0,
                                  rope_scaling=dict(rope_type="linear", factor=4.0))),
    "phi": ("Phi", dict(SMALL, partial_rotary_factor=0.5, tie_word_embeddings=False)),
}
LENGTHS = [12, 7, 3]


def _saved(tmp_path, case: str, head: str):
    """A tiny random transformers model of ``case`` with ``head`` ("ForSequenceClassification" or
    "ForCausalLM"/"LMHeadModel"), saved to a folder; the model and the folder."""
    prefix, settings = CASES[case]
    config = getattr(transformers, prefix + "Config")(**settings, num_labels=3)
    lm = {"GPT2": "GPT2LMHeadModel", "Gemma3Text": "Gemma3ForCausalLM"}.get(prefix, prefix + "ForCausalLM")
    name = lm if head == "lm" else prefix + "ForSequenceClassification"
    torch.manual_seed(0)
    model = getattr(transformers, name)._from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():  # transformers zero-initialises some biases: give every parameter a value
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    folder = tmp_path / f"{case}-{head}"
    model.save_pretrained(folder)
    return model, folder


def _batch():
    rng = np.random.default_rng(0)
    ids = np.full((len(LENGTHS), max(LENGTHS)), PAD, np.int64)
    mask = np.zeros_like(ids)
    for r, n in enumerate(LENGTHS):
        ids[r, :n], mask[r, :n] = rng.integers(1, V, n), 1
    return ids, mask


@pytest.mark.parametrize("case", CASES)
def test_sequence_classification_logits_equal_transformers(case, tmp_path):
    reference, folder = _saved(tmp_path, case, "cls")
    ids, mask = _batch()
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    ours = load_classifier(str(folder), tokenizer=False)
    assert not ours.fresh_params
    got = ours.model(jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32)).logits
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_causal_lm_logits_equal_transformers(case, tmp_path):
    reference, folder = _saved(tmp_path, case, "lm")
    ids, mask = _batch()
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    model = load_classifier(str(folder), tokenizer=False, lm_head=True).model
    out = model(jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32))
    got = np.asarray(model.lm_logits(out.last_hidden_state))
    real = mask.astype(bool)  # padded positions are never read
    np.testing.assert_allclose(got[real], expected[real], atol=1e-5)


@pytest.mark.parametrize("case", ["gpt2", "llama3", "qwen2"])
def test_gradient_with_respect_to_the_input_embeddings_equals_transformers(case, tmp_path):
    reference, folder = _saved(tmp_path, case, "cls")
    ids = np.random.default_rng(1).integers(1, V, (2, 9))  # unpadded: transformers reads the last position
    embeds = reference.get_input_embeddings()(torch.tensor(ids)).detach().requires_grad_(True)
    reference(inputs_embeds=embeds).logits[:, 1].sum().backward()
    model = load_classifier(str(folder), tokenizer=False).model
    ours = jax.grad(lambda e: model(inputs_embeds=e).logits[:, 1].sum())(model.embed_words(jnp.asarray(ids, jnp.int32)))
    np.testing.assert_allclose(np.asarray(ours), embeds.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("settings, message", [
    (dict(model_type="llama", rope_scaling=dict(rope_type="yarn", factor=2.0)), "rope_scaling"),
    (dict(model_type="gpt2", scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
    (dict(model_type="llama", hidden_act="tanh"), "hidden_act"),
    (dict(model_type="phi3", rope_scaling=dict(rope_type="longrope", short_factor=[1.0], long_factor=[1.0])), "rope_scaling"),
    (dict(model_type="phi", qk_layernorm=True), "qk_layernorm"),
    (dict(model_type="falcon"), "supported: gpt2, llama, mistral, qwen2, phi3, gemma, gemma2, gemma3_text, phi"),
])
def test_unsupported_decoder_configs_are_refused_by_name(settings, message):
    with pytest.raises(JaxRobustError, match=message):
        DecoderConfig.from_hf(settings)


FULL = {  # the published configs (the keys that size the model)
    "gpt2": dict(model_type="gpt2"),
    "Llama-3.2-1B": dict(model_type="llama", vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
                         rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
                         rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                           original_max_position_embeddings=8192)),
    "SmolLM2-135M": dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                         tie_word_embeddings=True),
    "Qwen2-0.5B": dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0,
                       tie_word_embeddings=True),
    "Mistral-7B-v0.1": dict(model_type="mistral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                            num_attention_heads=32, num_key_value_heads=8, sliding_window=4096),
    "gemma-2-2b": dict(model_type="gemma2", vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                       num_attention_heads=8, num_key_value_heads=4, head_dim=256),
    "gemma-3-1b": dict(model_type="gemma3_text", vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
                       num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512),
    "phi-2": dict(model_type="phi", vocab_size=51200, hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
                  num_attention_heads=32, partial_rotary_factor=0.4),
    "Phi-3-mini-4k": dict(model_type="phi3", vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                          num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, sliding_window=2047),
}


@pytest.mark.parametrize("name", FULL)
def test_full_size_configs_have_transformers_parameter_counts(name):
    """Built abstractly (nothing allocated): as many parameters as transformers builds for the same
    config on the meta device, causal-LM and sequence-classification models alike."""
    from flax import nnx

    from jaxrobust.models.decoder import DecoderClassifier
    from jaxrobust.models.weights import flat_params

    settings = FULL[name]
    cfg = DecoderConfig.from_hf(settings, num_labels=2)
    model = nnx.eval_shape(lambda: DecoderClassifier(cfg, rngs=nnx.Rngs(0)))
    sizes = {path: int(np.prod(v.shape)) for path, v in flat_params(model).items()}
    lm_head = sum(n for p, n in sizes.items() if p.startswith("lm_head."))
    head = sum(n for p, n in sizes.items() if p.startswith("head."))
    hf_config = transformers.AutoConfig.for_model(**settings, num_labels=2)
    count = lambda cls: sum(p.numel() for p in _meta(cls, hf_config).parameters())
    assert sum(sizes.values()) - head == count(transformers.AutoModelForCausalLM)
    assert sum(sizes.values()) - lm_head == count(transformers.AutoModelForSequenceClassification)


def _meta(cls, config):
    with torch.device("meta"):
        return cls.from_config(config)


def test_a_checkpoint_that_does_not_fit_names_its_keys_in_one_error(tmp_path):
    import json

    _, folder = _saved(tmp_path, "llama", "cls")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1, "intermediate_size": 40}))
    with pytest.raises(JaxRobustError, match=r"do not fit the llama classifier; unexpected: model\.layers\.1\.[^;]*; "
                                             r"mis-shaped: model\.layers\.0\.mlp\."):
        load_classifier(str(folder), tokenizer=False)


def test_the_sequence_classifier_names_are_transformers_own():
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES as expected

    from jaxrobust.models.registry import FAMILIES

    assert {t: f.hf_class for t, f in FAMILIES.items()} == {t: expected[t] for t in FAMILIES}


@pytest.mark.parametrize("case", CASES)
def test_an_exported_decoder_classifier_loads_in_transformers_with_the_same_logits(case, tmp_path):
    """A changed classifier (every parameter moved, as fine-tuning would) written by ``export_classifier``:
    transformers' sequence classifier of the family loads every tensor (none missing, none unexpected)
    and computes our logits; a config without a pad id gets the tokenizer's (eos), which transformers
    needs for a batch. The tiny GPT-2 tokenizer has no pad token."""
    import json

    import conftest
    from flax import nnx

    from jaxrobust.models import export_classifier

    _, folder = _saved(tmp_path, case, "cls")
    config = json.loads((folder / "config.json").read_text())
    config.pop("pad_token_id")
    (folder / "config.json").write_text(json.dumps(config))
    conftest.gpt2(tmp_path).save_pretrained(folder)
    loaded = load_classifier(str(folder))
    params = nnx.state(loaded.model, nnx.Param)
    noise = jax.tree.map(lambda p: 0.01 * jax.random.normal(jax.random.key(1), p.shape), params)
    nnx.update(loaded.model, jax.tree.map(lambda p, n: p + n, params, noise))
    out = export_classifier(loaded, tmp_path / "export", ["a", "b", "c"])

    reference, info = transformers.AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    pad = loaded.tokenizer.eos_token_id
    assert reference.config.pad_token_id == pad and reference.config.id2label == {0: "a", 1: "b", 2: "c"}
    ids, mask = _batch()
    ids = np.where(mask == 1, np.where(ids == pad, pad + 1, ids), pad)  # the pad id marks padding only
    with torch.no_grad():
        expected = reference.eval()(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    got = loaded.model(jnp.asarray(ids, jnp.int32), jnp.asarray(mask, jnp.int32)).logits
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4)
