"""The command line as a user runs it: train, evaluate, export; one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from jaxrobust.train import load_run


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "jaxrobust", *map(str, args)], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_train_evaluate_export(tiny_model_dir, tiny_task, tmp_path):
    directory, _ = tiny_model_dir("bert", num_labels=2)
    experiment = tmp_path / "tiny_experiment.py"
    experiment.write_text(
        "from jaxrobust.train import default_config\n\n"
        "def get_config(arg=None):\n"
        "    c = default_config()\n"
        f"    c.task = {tiny_task!r}\n"
        f"    c.model = {str(directory)!r}\n"
        "    c.max_length, c.buckets, c.batch_size, c.eval_batch_size = 16, (16,), 8, 16\n"
        "    return c\n"
    )
    run = tmp_path / "run"
    trained = _cli("train", "--config", experiment, "--workdir", run, "--config.max_steps=3", "--config.lr=0.001")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "test_accuracy" in trained.stdout
    results = json.loads((run / "results.json").read_text())
    assert results["total_steps"] == 3
    assert json.loads((run / "config.json").read_text())["lr"] == 0.001

    evaluated = _cli("evaluate", "--workdir", run, "--split", "test")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    accuracy = float(next(l.split()[1] for l in evaluated.stdout.splitlines() if l.startswith("accuracy")))
    assert abs(accuracy - results["test_accuracy"]) < 1e-4

    exported = _cli("export", "--workdir", run, "--out", tmp_path / "hf")
    assert exported.returncode == 0, exported.stderr[-2000:]
    reference = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "hf")).eval()
    assert reference.config.id2label == {0: "neg", 1: "pos"}
    _, prepared = load_run(run)
    batch = prepared.classifier.tokenizer(["the film was good", "very boring"], padding=True, return_tensors="np")
    with torch.no_grad():
        theirs = reference(**{k: torch.tensor(v) for k, v in batch.items()}).logits.numpy()
    ours = prepared.classifier.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4, rtol=0)


def test_unknown_override_key_is_one_line(tmp_path):
    proc = _cli("train", "--config", "quickstart", "--workdir", tmp_path / "run", "--config.learning_rate=1")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: config has no key 'learning_rate'")


def test_hub_task_offline_is_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = _cli("data", "describe", "sst2", env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: could not load glue/sst2 from the Hugging Face hub")
    assert "offline tasks: " in proc.stderr and "rotten_tomatoes" in proc.stderr


def test_unknown_task_is_one_line():
    proc = _cli("data", "describe", "not_a_task")
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown task 'not_a_task'")


def test_rift_bert_without_the_hub_names_rift_minilm_in_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = _cli("experiment", "--config", "rift_bert", "--workdir", tmp_path / "run", env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: this experiment needs the Hugging Face hub; without it run `make experiment EXP=rift_minilm`")
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_transfer_mbib_without_the_hub_names_transfer_study_in_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = _cli("experiment", "--config", "transfer_mbib", "--workdir", tmp_path / "run", env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: this study needs the Hugging Face hub; without it run `make experiment EXP=transfer_study`")
    assert not (tmp_path / "run").exists()  # nothing half-written
