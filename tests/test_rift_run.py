"""Whole RIFT runs on the tiny model: an interrupted run resumes to the same end, and the run exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flax import nnx

from jaxrobust.checkpoint import Checkpoints
from jaxrobust.models import load_classifier
from jaxrobust.objectives import get_objective
from jaxrobust.train import load_run, make_optimizer, train_and_evaluate

NEIGHBOURS = {"good": ["great"], "great": ["good"], "bad": ["boring"], "boring": ["bad"], "film": ["plot"], "plot": ["film"]}


@pytest.fixture
def rift_config(tiny_config, tmp_path):
    """``tiny_config`` as a short RIFT run: 9 class-balanced batches of 4 + 4 an epoch, 12 steps."""
    neighbours = tmp_path / "neighbours.json"
    neighbours.write_text(json.dumps(NEIGHBOURS))
    c = tiny_config
    c.objective = "rift"
    c.buckets = (16,)  # one batch shape: one compilation of the step
    c.synonyms.update(source=f"counterfitted:{neighbours}", k=2, min_cos=0.0)
    c.ascc.update(steps=2, lr=1.0, entropy_weight=1.0)
    c.rift.update(w_clean=1.0, w_kl=2.0, w_mi=0.5, head_hidden=16, head_dim=8)
    c.lr = 1e-3
    c.max_steps = 12
    return c


def test_each_training_row_gets_its_own_examples_teacher_features(rift_config):
    """``fixed_inputs`` computes the teacher's features once over the training split; every row of
    every training batch then carries those of its own example (as the teacher gives them for that
    batch), and padding rows are ignored."""
    from jaxrobust.objectives.rift import teacher_features
    from jaxrobust.train import epoch_batches, fixed_inputs, prepare, training_substitutions, with_fixed_inputs

    prepared = prepare(rift_config)
    objective = get_objective("rift")
    trained = objective.wrap(prepared.classifier.model, 2, rift_config)
    fixed = fixed_inputs(objective, trained, prepared, rift_config)
    assert fixed["teacher_pooled"].shape[0] == len(prepared.splits["train"])
    batches = epoch_batches(prepared, rift_config, 1, training_substitutions(prepared, rift_config))
    for batch in batches[:3]:
        given = with_fixed_inputs(batch, fixed)["teacher_pooled"]
        direct = nnx.jit(teacher_features)(trained, {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
        np.testing.assert_allclose(given, np.asarray(direct["teacher_pooled"]), atol=1e-5, rtol=0)


def _checkpointed_state(config, run_dir, step: int) -> dict:
    """Every parameter (classifier and projection heads) of RIFT training checkpoint ``step``."""
    model = load_classifier(config.model, 2, tokenizer=False).model
    trained = get_objective("rift").wrap(model, 2, config)
    optimizer = nnx.Optimizer(trained, make_optimizer(config, config.max_steps), wrt=nnx.Param)
    Checkpoints(f"{run_dir}/checkpoints", keep=2).restore(step, {"model": trained, "optimizer": optimizer})
    state = nnx.to_flat_state(nnx.state(trained, nnx.Param))
    return {"/".join(map(str, path)): np.asarray(v.get_value()) for path, v in state}


@pytest.mark.slow
def test_interrupted_rift_run_resumes_bitwise(rift_config, tmp_path):
    """The frozen teacher is not checkpointed: the resumed run rebuilds it from the pretrained weights,
    and must end exactly where the uninterrupted run ends."""
    rift_config.checkpoint_every_steps = 4
    straight = train_and_evaluate(rift_config, tmp_path / "a")
    assert straight["total_steps"] == 12

    class Killed(Exception):
        pass

    def kill_at(step):
        if step == 7:  # after the checkpoint of step 4; the rest crosses the epoch end (step 9)
            raise Killed

    with pytest.raises(Killed):
        train_and_evaluate(rift_config, tmp_path / "b", on_step=kill_at)
    assert Checkpoints(tmp_path / "b" / "checkpoints", keep=2).latest_step() == 4
    resumed = train_and_evaluate(rift_config, tmp_path / "b")

    timing = {"train_seconds", "examples_per_second", "train_step_compilations"}
    assert {k: v for k, v in straight.items() if k not in timing} == {k: v for k, v in resumed.items() if k not in timing}
    logged = [(tmp_path / run / "metrics.jsonl").read_text() for run in ("a", "b")]
    assert logged[0] == logged[1]
    records = [json.loads(line) for line in logged[0].splitlines()]
    assert sum("info_nce" in r for r in records) == 12  # the RIFT terms were logged at every step
    states = [_checkpointed_state(rift_config, tmp_path / run, 12) for run in ("a", "b")]
    assert states[0].keys() == states[1].keys()
    assert any("student_heads" in k for k in states[0]) and not any("teacher/" in k for k in states[0])
    for key in states[0]:
        np.testing.assert_array_equal(states[0][key], states[1][key], err_msg=key)


@pytest.mark.slow
def test_rift_run_exports_to_transformers(rift_config, tiny_model_dir, tmp_path):
    """A RIFT run's best model exports (classifier only: no heads, no teacher) and transformers computes
    the same logits as jaxrobust, and the run's test accuracy."""
    import jax.numpy as jnp
    import torch
    from transformers import AutoModelForSequenceClassification

    from jaxrobust.data.encoding import make_batches
    from jaxrobust.models import export_classifier

    rift_config.max_steps, rift_config.lr = 18, 1e-2  # two epochs (one leaves test accuracy at 0.5), far enough from the pretrained weights
    results = train_and_evaluate(rift_config, tmp_path / "run")
    assert results["test_accuracy"] > 0.6  # not one class for every example
    _, prepared = load_run(tmp_path / "run")
    out = export_classifier(prepared.classifier, tmp_path / "exported", prepared.task.label_names)
    exported = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    _, pretrained = tiny_model_dir("bert", num_labels=2)
    assert exported.config.id2label == dict(enumerate(prepared.task.label_names))
    assert exported.state_dict().keys() == pretrained.state_dict().keys()

    model = prepared.classifier.model
    batch = prepared.classifier.tokenizer(["the film was good", "a very boring plot and bad"], padding=True, return_tensors="np")
    with torch.no_grad():
        theirs = exported(**{k: torch.tensor(v) for k, v in batch.items()}).logits.numpy()
        before = pretrained(**{k: torch.tensor(v) for k, v in batch.items()}).logits.numpy()
    ours = np.asarray(model(*(jnp.asarray(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))).logits)
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    assert np.abs(theirs - before).max() > 1e-2  # the exported weights are the fine-tuned ones

    correct = total = 0
    pad = prepared.classifier.tokenizer.pad_token_id
    for b in make_batches(prepared.splits["test"], 16, rift_config.buckets, pad):
        real = b["weights"] > 0
        with torch.no_grad():
            logits = exported(
                input_ids=torch.tensor(b["input_ids"]), attention_mask=torch.tensor(b["attention_mask"]),
                token_type_ids=torch.tensor(b["token_type_ids"]),
            ).logits.numpy()
        correct += int((logits.argmax(-1) == b["labels"])[real].sum())
        total += int(real.sum())
    assert total == results["n_test"] and correct / total == results["test_accuracy"]
