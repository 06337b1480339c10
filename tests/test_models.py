"""Parity of the Flax encoders with transformers' PyTorch models on tiny random configs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from jaxrobust.models import EncoderConfig, SequenceClassifier, load_classifier

FAMILIES = ["bert", "roberta", "mpnet"]
ATOL = 1e-5


def _batch(family: str, pad_id: int):
    """Two sequences, the second padded: ``ids [2, 11]``, ``mask [2, 11]``."""
    ids = np.random.RandomState(0).randint(5, 120, size=(2, 11))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    ids[1, 7:] = pad_id
    return ids, mask


def _torch_pooled(family: str, model, hidden):
    if family == "bert":
        return model.bert.pooler(hidden)
    return torch.tanh(model.classifier.dense(hidden[:, 0]))


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_parity(tiny_model_dir, family):
    directory, reference = tiny_model_dir(family)
    loaded = load_classifier(str(directory))
    assert loaded.fresh_params == []
    ids, mask = _batch(family, reference.config.pad_token_id)
    with torch.no_grad():
        ref = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), output_hidden_states=True)
        ref_pooled = _torch_pooled(family, reference, ref.hidden_states[-1])
    ours = loaded.model(jnp.asarray(ids), jnp.asarray(mask), output_hidden_states=True)

    real = mask.astype(bool)  # padded positions carry no meaning in either model
    assert len(ours.hidden_states) == len(ref.hidden_states) == 3
    for theirs, mine in zip(ref.hidden_states, ours.hidden_states):
        np.testing.assert_allclose(np.asarray(mine)[real], theirs.numpy()[real], atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(ours.pooled), ref_pooled.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(ours.logits), ref.logits.numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_inputs_embeds_path_equals_ids_path(tiny_model_dir, family):
    directory, reference = tiny_model_dir(family)
    model = load_classifier(str(directory), tokenizer=False).model
    ids, mask = _batch(family, reference.config.pad_token_id)
    by_ids = model(jnp.asarray(ids), jnp.asarray(mask))
    by_embeds = model(inputs_embeds=model.embed_words(jnp.asarray(ids)), attention_mask=jnp.asarray(mask))
    np.testing.assert_array_equal(np.asarray(by_ids.logits), np.asarray(by_embeds.logits))


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_wrt_input_embeddings_matches(tiny_model_dir, family):
    directory, reference = tiny_model_dir(family)
    model = load_classifier(str(directory), tokenizer=False).model
    # Unpadded: transformers numbers RoBERTa/MPNet positions sequentially when given embeddings.
    ids = np.random.RandomState(1).randint(5, 120, size=(2, 9))
    weights = np.array([[0.3, -1.0, 2.0], [1.5, 0.5, -0.7]], np.float32)  # a generic linear functional

    embeds = reference.get_input_embeddings()(torch.tensor(ids)).detach().requires_grad_(True)
    (reference(inputs_embeds=embeds).logits * torch.tensor(weights)).sum().backward()

    def objective(e):
        return (model(inputs_embeds=e).logits * weights).sum()

    grad = jax.grad(objective)(model.embed_words(jnp.asarray(ids)))
    assert np.abs(embeds.grad.numpy()).max() > 1e-3  # the comparison is not between zeros
    np.testing.assert_allclose(np.asarray(grad), embeds.grad.numpy(), atol=ATOL, rtol=0)


def test_dropout_only_in_train_mode(tiny_model_dir):
    directory, _ = tiny_model_dir("bert")
    model = load_classifier(str(directory), tokenizer=False).model
    ids = jnp.asarray(np.random.RandomState(2).randint(5, 120, size=(2, 9)))
    assert np.array_equal(np.asarray(model(ids).logits), np.asarray(model(ids).logits))
    model.train()
    assert not np.allclose(np.asarray(model(ids).logits), np.asarray(model(ids).logits))


@pytest.mark.parametrize(
    "family, size",
    [("bert", dict(vocab_size=30522, type_vocab_size=2, pad_token_id=0)), ("roberta", dict(vocab_size=50265, type_vocab_size=1, pad_token_id=1))],
)
def test_base_size_shapes_without_memory(family, size):
    """bert-base / roberta-base configurations, checked abstractly under eval_shape."""
    cfg = EncoderConfig(
        model_type=family, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
        hidden_act="gelu", max_position_embeddings=512 if family == "bert" else 514, layer_norm_eps=1e-12,
        hidden_dropout=0.1, attention_dropout=0.1, classifier_dropout=0.1, num_labels=2, **size,
    )
    abstract = nnx.eval_shape(lambda: SequenceClassifier(cfg, rngs=nnx.Rngs(0)))
    n_params = sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    expected = {"bert": 109_483_778, "roberta": 124_647_170}[family]  # transformers' own parameter counts
    assert n_params == expected

    def forward(model, ids):
        return model(ids, jnp.ones_like(ids), output_hidden_states=True)

    out = nnx.eval_shape(forward, abstract, jax.ShapeDtypeStruct((4, 128), jnp.int32))
    assert out.logits.shape == (4, 2)
    assert out.pooled.shape == (4, 768) and out.last_hidden_state.shape == (4, 128, 768)
    assert len(out.hidden_states) == 13 and out.hidden_states[-1].shape == (4, 128, 768)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_defaults_are_transformers_defaults(family):
    """A config.json that leaves a key out reads as transformers' own config class would read it."""
    from transformers import AutoConfig

    from jaxrobust.models.config import HF_DEFAULTS

    theirs = AutoConfig.for_model(family).to_dict()
    assert {k: theirs[k] for k in HF_DEFAULTS[family]} == HF_DEFAULTS[family]
    assert EncoderConfig.from_hf({"model_type": family}) == EncoderConfig.from_hf(theirs)


def test_loading_and_export_never_import_torch(tiny_model_dir, tmp_path):
    """Reading a model directory and exporting it use no PyTorch (importing it costs seconds)."""
    import subprocess
    import sys

    directory, _ = tiny_model_dir("roberta")
    script = (
        "import sys\nfrom jaxrobust.models import load_classifier, export_classifier\n"
        f"export_classifier(load_classifier({str(directory)!r}), {str(tmp_path / 'out')!r})\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
