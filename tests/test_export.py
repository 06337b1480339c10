"""Export to Hugging Face format and back: transformers computes the same logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from transformers import AutoModelForSequenceClassification

from jaxrobust.models import export_classifier, load_classifier
from jaxrobust.models.weights import flat_params


@pytest.mark.parametrize("family", ["bert", "roberta", "mpnet"])
def test_export_round_trip(tiny_model_dir, tmp_path, family):
    directory, _ = tiny_model_dir(family)
    loaded = load_classifier(str(directory))
    # Move every parameter away from the checkpoint, as fine-tuning would.
    state = nnx.state(loaded.model, nnx.Param)
    keys = iter(jax.random.split(jax.random.key(0), len(jax.tree.leaves(state))))
    nnx.update(loaded.model, jax.tree.map(lambda p: p + 0.01 * jax.random.normal(next(keys), p.shape), state))

    out = export_classifier(loaded, tmp_path / "exported", label_names=["neg", "neu", "pos"])
    exported = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    assert exported.config.id2label == {0: "neg", 1: "neu", 2: "pos"}

    batch = loaded.tokenizer(["the film was good", "not very good and boring"], padding=True, return_tensors="np")
    with torch.no_grad():
        theirs = exported(**{k: torch.tensor(v) for k, v in batch.items()}).logits.numpy()
    ours = loaded.model(
        jnp.asarray(batch["input_ids"]), jnp.asarray(batch["attention_mask"]),
        jnp.asarray(batch["token_type_ids"]) if family != "mpnet" else None,
    ).logits
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4, rtol=0)

    reloaded = load_classifier(str(out))
    assert reloaded.fresh_params == []
    before, after = flat_params(loaded.model), flat_params(reloaded.model)
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(np.asarray(before[k]), np.asarray(after[k]))


def test_export_leaves_nothing_half_written(tiny_model_dir, tmp_path):
    directory, _ = tiny_model_dir("bert")
    loaded = load_classifier(str(directory))
    with pytest.raises(Exception, match="2 label names"):
        export_classifier(loaded, tmp_path / "exported", label_names=["a", "b"])
    assert list(tmp_path.iterdir()) == []
