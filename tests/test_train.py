"""Fine-tuning on a tiny model: learning, exact resume, compile counts, mesh, bad input."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrobust.checkpoint import Checkpoints
from jaxrobust.configs import apply_override
from jaxrobust.data.encoding import Encoded, make_batches
from jaxrobust.errors import JaxRobustError
from jaxrobust.models import load_classifier
from jaxrobust.models.weights import flat_params
from jaxrobust.train import make_optimizer, train_and_evaluate

def _checkpointed_params(config, run_dir, step: int, total_steps: int) -> dict:
    """The model parameters of training checkpoint ``step`` (restored with their optimizer)."""
    model = load_classifier(config.model, 2, tokenizer=False).model
    optimizer = nnx.Optimizer(model, make_optimizer(config, total_steps), wrt=nnx.Param)
    Checkpoints(f"{run_dir}/checkpoints", keep=2).restore(step, {"model": model, "optimizer": optimizer})
    return {k: np.asarray(v) for k, v in flat_params(model).items()}


def _losses(workdir):
    return [r["loss"] for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_loss_decreases_and_results_are_written(tiny_ft_run, tiny_model_dir):
    _, run, results = tiny_ft_run
    losses = _losses(run)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert results["dev_accuracy"] > 0.9
    saved = json.loads((run / "results.json").read_text())
    for key in ("task", "model", "seed", "dev_accuracy", "test_accuracy", "test_macro_f1", "train_seconds", "examples_per_second"):
        assert key in saved
    # The classifier's size, as transformers counts the same checkpoint with its head.
    assert saved["parameters"] == tiny_model_dir("bert", num_labels=2)[1].num_parameters()
    # One compilation per bucket shape, whatever the number of steps.
    assert results["train_step_compilations"] == 2 and results["total_steps"] > 10


@pytest.mark.parametrize("select_on", ["accuracy", "loss"])
def test_the_kept_model_is_the_best_on_dev(tiny_config, tmp_path, select_on):
    """The model evaluated (and kept) is the one of the evaluation with the best dev accuracy (the
    first of equals) or the lowest dev loss."""
    tiny_config.select_on, tiny_config.eval_every_steps, tiny_config.epochs = select_on, 3, 3
    results = train_and_evaluate(tiny_config, tmp_path / "run")
    dev = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "dev_loss" in r]
    key = (lambda r: -r["dev_accuracy"]) if select_on == "accuracy" else (lambda r: r["dev_loss"])
    best = min(dev, key=key)
    assert results["best_step"] == best["step"] and results["dev_accuracy"] == pytest.approx(best["dev_accuracy"])
    assert len({r["dev_loss"] for r in dev}) == len(dev) > 2


class _StepClock:
    """Stands in for ``time`` in jaxrobust.train: every timed step lasts exactly one second."""

    def __init__(self):
        self.calls = 0

    def perf_counter(self) -> float:
        self.calls += 1
        return self.calls // 2  # t0 = n, end = n + 1 (the calls come in pairs around each step)


def test_interrupted_run_resumes_bitwise(tiny_ft_run, tmp_path, monkeypatch, capsys):
    """Killed after step 7, its newest checkpoint (6) damaged: the run resumes from step 4 and ends
    exactly where the uninterrupted shared run ends."""
    import jaxrobust.train

    straight_config, straight_run, straight = tiny_ft_run
    config = copy.deepcopy(straight_config)
    config.checkpoint_every_steps = 2  # where the checkpoints are does not change what is computed

    class Killed(Exception):
        pass

    def kill_at(step):
        if step == 7:  # after the checkpoints at steps 4 and 6 (two are kept)
            raise Killed

    monkeypatch.setattr(jaxrobust.train, "time", _StepClock())
    with pytest.raises(Killed):
        train_and_evaluate(config, tmp_path / "b", on_step=kill_at)
    for f in (tmp_path / "b" / "checkpoints" / "6").rglob("*"):  # as a crash while writing it would
        if f.is_file() and f.stat().st_size > 0 and "meta" not in str(f):
            f.write_bytes(b"\0" * 7)
    capsys.readouterr()
    monkeypatch.setattr(jaxrobust.train, "time", _StepClock())
    resumed = train_and_evaluate(config, tmp_path / "b")
    err = capsys.readouterr().err
    assert "checkpoint" in err and "6 is corrupt or does not fit" in err and "from step 4" in err

    timing = {"train_seconds", "examples_per_second", "train_step_compilations"}
    assert {k: v for k, v in straight.items() if k not in timing} == {k: v for k, v in resumed.items() if k not in timing}
    # train_seconds counts the 4 steps before the checkpoint and the 84 after it, one second each.
    assert resumed["train_seconds"] == resumed["total_steps"]
    assert (straight_run / "metrics.jsonl").read_text() == (tmp_path / "b" / "metrics.jsonl").read_text()
    final = straight["total_steps"]
    params = [_checkpointed_params(config, run, final, final) for run in (straight_run, tmp_path / "b")]
    for key in params[0]:
        np.testing.assert_array_equal(params[0][key], params[1][key])


def test_batches_keep_every_example_once():
    rng = np.random.default_rng(0)
    encoded = [
        Encoded(np.arange(n, dtype=np.int32), np.zeros(n, np.int32), np.zeros(n, np.int32), [], int(n % 2))
        for n in rng.integers(2, 17, size=37)
    ]
    batches = make_batches(encoded, batch_size=8, buckets=(8, 16), pad_id=1, shuffle_seed=3)
    seen = np.concatenate([b["index"][b["weights"] > 0] for b in batches])
    assert sorted(seen.tolist()) == list(range(37))
    assert {b["input_ids"].shape for b in batches} <= {(8, 8), (8, 16)}
    for b in batches:
        assert np.all(b["index"][b["weights"] == 0] == -1)
        for row in np.flatnonzero(b["weights"]):
            n = encoded[b["index"][row]].length
            assert b["attention_mask"][row].sum() == n and b["input_ids"].shape[1] >= n
    again = make_batches(encoded, batch_size=8, buckets=(8, 16), pad_id=1, shuffle_seed=3)
    assert all(np.array_equal(x["index"], y["index"]) for x, y in zip(batches, again))


def test_unknown_task_and_override_key(tiny_config, tmp_path):
    with pytest.raises(JaxRobustError, match="config has no key 'learning_rate'"):
        apply_override(tiny_config, "--config.learning_rate=0.1")
    with pytest.raises(JaxRobustError, match="expected float"):
        apply_override(tiny_config, "--config.lr=fast")
    tiny_config.task = "not_a_task"
    with pytest.raises(JaxRobustError, match="unknown task 'not_a_task'; known tasks: .*rotten_tomatoes"):
        train_and_evaluate(tiny_config, tmp_path / "run")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("batch_size", 0, "--config.batch_size must be a positive integer, got 0"),
        ("batch_size", -4, "--config.batch_size must be a positive integer, got -4"),
        ("eval_batch_size", 0, "--config.eval_batch_size must be a positive integer"),
        ("epochs", 0, "--config.epochs must be a positive integer, got 0"),
        ("epochs", -1, "--config.epochs must be a positive integer, got -1"),
        ("max_steps", -2, "--config.max_steps must be 0 \\(no limit\\) or a positive integer"),
        ("objective", "magic", "unknown objective 'magic'; known: ft, adv"),
        ("lr", 0.0, "--config.lr must be a number in \\(0, inf\\)"),
        ("lr", float("nan"), "--config.lr must be a number"),
        ("warmup_ratio", 1.0, "--config.warmup_ratio must be a number in \\[0, 1\\)"),
        ("buckets", (0, 16), "--config.buckets must be positive token lengths"),
        ("max_length", 32, "largest bucket 16 is below max_length 32"),
        ("synonyms.k", 0, "--config.synonyms.k must be a positive integer"),
        ("synonyms.source", "nope", "unknown synonym source 'nope'"),
        ("ascc.steps", 0, "--config.ascc.steps must be a positive integer"),
        ("rift.tau", 0.0, "--config.rift.tau must be a number in \\(0, inf\\)"),
        ("batch_size", 7, "objective rift needs --config.batch_size divisible by the 2 classes, got 7"),
        ("infobert.adv_lr", 0.0, "--config.infobert.adv_lr must be a number in \\(0, inf\\)"),
        ("infobert.ch", 0.4, "--config.infobert.ch must be a number in \\[0.5, 1\\], got 0.4"),
        ("infobert.critic_hidden", 0, "--config.infobert.critic_hidden must be a positive integer"),
        ("select_on", "f1", "--config.select_on must be accuracy or loss, got 'f1'"),
        ("dtype", "float16", "--config.dtype must be one of float32, bfloat16, got 'float16'"),
    ],
)
def test_a_rejected_config_leaves_nothing_behind(tiny_config, tmp_path, key, value, message):
    """Each bad setting has its own message, before anything is written: the corrected command runs."""
    if key.split(".")[0] in ("synonyms", "ascc", "rift") or value == 7:
        tiny_config.objective = "rift"
    if key.startswith("infobert."):
        tiny_config.objective = "infobert"
    node, leaf = (tiny_config[key.split(".")[0]], key.split(".")[1]) if "." in key else (tiny_config, key)
    node[leaf] = value
    with pytest.raises(JaxRobustError, match=message):
        train_and_evaluate(tiny_config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_divergence_stops_and_the_corrected_config_needs_no_overwrite(tiny_config, tmp_path, monkeypatch):
    from jaxrobust import objectives

    def nan_loss(model, batch, rng, config):
        loss, metrics = objectives.ft_loss(model, batch, rng, config)
        return loss * jnp.nan, metrics

    monkeypatch.setitem(objectives.OBJECTIVES, "nan", objectives.Objective(nan_loss))
    tiny_config.objective, tiny_config.max_steps = "nan", 2
    with pytest.raises(JaxRobustError, match="loss is nan at step 1: training diverged"):
        train_and_evaluate(tiny_config, tmp_path / "run")
    tiny_config.objective = "ft"  # the corrected command: no --overwrite needed, nothing was trained
    assert train_and_evaluate(tiny_config, tmp_path / "run")["total_steps"] == 2


def test_a_run_is_keyed_by_its_split(tiny_config, tmp_path):
    from jaxrobust.train import saved_split, split_digest

    tiny_config.max_steps = 2
    run = tmp_path / "run"
    results = train_and_evaluate(tiny_config, run)
    split = json.loads((run / "split.json").read_text())
    assert split["digest"] == results["split_digest"] == saved_split(run) == split_digest(tiny_config)
    assert (split["train"], split["dev"], split["test"], split["duplicates_dropped"]) == (
        results["n_train"], results["n_dev"], results["n_test"], 0)
    assert train_and_evaluate(tiny_config, run)["total_steps"] == 2  # same config, same data: reused
    csv = Path(tiny_config.task.removeprefix("csv:"))
    with csv.open("a") as f:
        f.write("the film was good,pos\n")  # a repeat: dropped, so the split is the same
    assert split_digest(tiny_config) == results["split_digest"]
    assert train_and_evaluate(tiny_config, run)["duplicates_dropped"] == 1
    with csv.open("a") as f:
        f.write("good good,pos\n")  # a new sentence: another split
    with pytest.raises(JaxRobustError, match=r"the data of the run in .*run changed since it was trained \(split "
                       + results["split_digest"] + r", now [0-9a-f]{16}\); use --overwrite"):
        train_and_evaluate(tiny_config, run)
    assert saved_split(run) == results["split_digest"]  # refused: nothing rewritten
    again = train_and_evaluate(tiny_config, run, overwrite=True)
    assert again["split_digest"] == saved_split(run) == split_digest(tiny_config) != results["split_digest"]
    (run / "split.json").unlink()  # a run from before runs kept their split
    with pytest.raises(JaxRobustError, match="does not record its data split"):
        train_and_evaluate(tiny_config, run)


_MESH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    jax.config.update("jax_default_matmul_precision", "highest")
    from jaxrobust.train import default_config, make_optimizer, train_and_evaluate
    from test_train import _checkpointed_params
    c = default_config()
    c.update_from_flattened_dict(json.loads(sys.argv[1]))
    c.buckets = tuple(c.buckets)
    train_and_evaluate(c, sys.argv[2])
    np.savez(sys.argv[2] + "/params.npz", **_checkpointed_params(c, sys.argv[2], 3, 3))
    print("devices", jax.device_count())
    """
)


@pytest.mark.slow
def test_eight_fake_devices_match_one(tiny_config, tmp_path):
    tiny_config.max_steps = 3
    tiny_config.checkpoint_every_steps = 3
    settings = json.dumps(tiny_config.to_dict())
    out = {}
    for n in (1, 8):
        env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__), "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"}
        proc = subprocess.run(
            [sys.executable, "-c", _MESH_SCRIPT, settings, str(tmp_path / f"d{n}")], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"devices {n}" in proc.stdout
        out[n] = np.load(tmp_path / f"d{n}" / "params.npz")
    losses = [_losses(tmp_path / f"d{n}") for n in (1, 8)]
    np.testing.assert_allclose(losses[0], losses[1], atol=1e-5, rtol=0)
    for key in out[1].files:
        np.testing.assert_allclose(out[8][key], out[1][key], atol=1e-5, rtol=0)
