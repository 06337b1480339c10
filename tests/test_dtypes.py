"""Compute and parameter dtypes are model settings: a bfloat16 checkpoint is cast to float32 unless
``param_dtype`` keeps it, bfloat16 compute stays close to float32, and export writes what the model holds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from safetensors.numpy import load_file
from transformers import AutoModelForSequenceClassification

from jaxrobust.errors import JaxRobustError
from jaxrobust.models import export_classifier, load_classifier

TEXTS = ["the film was good", "not very good and boring", "a great plot"]


@pytest.fixture(scope="module", params=["bert", "gpt2"])
def bf16_checkpoint(request, tiny_model_dir, tmp_path_factory):
    """A tiny classifier saved in bfloat16, and transformers' float32 model of the same (rounded) weights."""
    import conftest

    if request.param == "bert":
        directory, model = tiny_model_dir("bert", num_labels=2)
        source, tokenizer_from = model, directory
    else:
        tok_dir = tmp_path_factory.mktemp("gpt2-tok")
        tok = conftest.gpt2(tok_dir)
        from transformers import GPT2Config, GPT2ForSequenceClassification

        torch.manual_seed(0)
        source = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                                          pad_token_id=tok.eos_token_id, num_labels=2)).eval()
        tokenizer_from = tok
    out = tmp_path_factory.mktemp(f"bf16-{request.param}")
    source.to(torch.bfloat16).save_pretrained(str(out))
    source.to(torch.float32)
    if request.param == "bert":
        from transformers import BertTokenizerFast

        BertTokenizerFast.from_pretrained(str(tokenizer_from)).save_pretrained(str(out))
    else:
        tokenizer_from.save_pretrained(str(out))
    reference = AutoModelForSequenceClassification.from_pretrained(str(out), torch_dtype=torch.float32).eval()
    return out, reference


def _batch(tok, kind: str):
    """The texts, right-padded (with eos where there is no pad token, as a decoder classifier is run)."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok(TEXTS, padding=True, return_tensors=kind)


def _logits(loaded) -> np.ndarray:
    batch = _batch(loaded.tokenizer, "np")
    return np.asarray(loaded.model(input_ids=jnp.asarray(batch["input_ids"]), attention_mask=jnp.asarray(batch["attention_mask"])).logits)


def _reference(reference, tok) -> np.ndarray:
    batch = _batch(tok, "pt")
    with torch.no_grad():
        return reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.numpy()


def _dtypes(model) -> set:
    return {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))}


def test_a_bfloat16_checkpoint_is_float32_unless_kept(bf16_checkpoint):
    directory, reference = bf16_checkpoint
    cast = load_classifier(str(directory))
    kept = load_classifier(str(directory), param_dtype="bfloat16")
    assert _dtypes(cast.model) == {jnp.dtype("float32")} and _dtypes(kept.model) == {jnp.dtype("bfloat16")}
    want = _reference(reference, cast.tokenizer)
    # Both compute in float32 from the same bfloat16 values: the logits of transformers' float32 model.
    np.testing.assert_allclose(_logits(cast), want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(_logits(kept), want, atol=1e-5, rtol=0)


def test_bfloat16_compute_is_close_to_float32(bf16_checkpoint):
    directory, _ = bf16_checkpoint
    f32, bf16 = load_classifier(str(directory)), load_classifier(str(directory), dtype="bfloat16")
    got, want = _logits(bf16), _logits(f32)
    assert got.dtype == np.float32  # logits come out in float32 whatever the compute dtype
    assert not np.array_equal(got, want)  # it did compute in bfloat16
    # bfloat16 keeps 8 bits of mantissa (relative error 4e-3 an operation): within 2 % of the logits' scale
    # (the tiny models' logits are about 0.04, so an absolute bound would hold for any output).
    np.testing.assert_allclose(got, want, atol=0.02 * np.abs(want).max(), rtol=0)


def test_export_writes_the_dtype_the_model_holds(bf16_checkpoint, tmp_path):
    directory, reference = bf16_checkpoint
    kept = load_classifier(str(directory), param_dtype="bfloat16")
    out = export_classifier(kept, tmp_path / "exported")
    tensors = load_file(str(out / "model.safetensors"))
    assert {t.dtype.name for t in tensors.values()} == {"bfloat16"}
    exported = AutoModelForSequenceClassification.from_pretrained(str(out), torch_dtype=torch.float32).eval()
    np.testing.assert_allclose(_reference(exported, kept.tokenizer), _reference(reference, kept.tokenizer), atol=1e-6, rtol=0)
    assert export_classifier(load_classifier(str(directory)), tmp_path / "f32").joinpath("config.json").read_text().count('"dtype": "float32"') == 1


def test_unknown_dtype_is_refused(bf16_checkpoint):
    with pytest.raises(JaxRobustError, match="param_dtype must be one of float32, bfloat16, got 'float16'"):
        load_classifier(str(bf16_checkpoint[0]), param_dtype="float16")


def test_training_computes_in_bfloat16_with_float32_parameters(tiny_config, tmp_path):
    """Mixed precision: the model computes in bfloat16, the optimizer updates float32 parameters; it learns."""
    import json

    from jaxrobust.train import load_run, train_and_evaluate

    tiny_config.dtype = "bfloat16"
    results = train_and_evaluate(tiny_config, tmp_path / "run")
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]) and results["dev_accuracy"] > 0.9
    config, prepared = load_run(tmp_path / "run")
    assert prepared.classifier.config.dtype == "bfloat16" and _dtypes(prepared.classifier.model) == {jnp.dtype("float32")}
