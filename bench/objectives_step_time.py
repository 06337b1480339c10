"""Training step time of every objective relative to standard fine-tuning, on the same batches.

Each objective trains MiniLM-L6 on Rotten Tomatoes with the settings of its ``*_minilm``
experiment (``experiments/rift_minilm.py`` and its baselines: batch 32, max length 64, 3 ASCC
steps, 3 FreeLB steps, half of each ADV batch attacked). Every objective runs the same
``--steps`` training batches of the rift_minilm protocol (class-balanced, so that RIFT can read
them; the other objectives ignore the balance), after ``--warmup`` steps that compile.
RIFT's cost ratio is the headline number; examples/s = batch size / mean step time. RIFT's frozen
teacher features are computed once per run, before the first step (``train.fixed_inputs``): that
pass is timed apart and also shown spread over one epoch's steps, so that a one-epoch run's real
cost per step is on the record beside the step's.

Writes ``bench/results/objectives_step_time.{json,md}``.

    python bench/objectives_step_time.py [--steps 8] [--warmup 2] [--methods ft,rift]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jaxrobust.configs import load_config
from jaxrobust.io import write_json_atomic, write_text_atomic
from jaxrobust.objectives import get_objective
from jaxrobust.train import (
    MODEL_INPUTS, epoch_batches, fixed_inputs, make_optimizer, make_train_step, prepare, training_substitutions, with_fixed_inputs,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_vs_pytorch import RESULTS, machine  # noqa: E402

METHODS = ("ft", "adv", "freelb", "ascc", "rift", "infobert")


def step_seconds(config, prepared, batches) -> tuple[list[float], float]:
    """Wall seconds of each of the training steps on ``batches`` (the first ones compile), and of
    the objective's one-off pass over the training split (0 if it has none; compilation included)."""
    objective = get_objective(config.objective)
    model = prepare(config).classifier.model  # a fresh pretrained model per objective
    trained = objective.wrap(model, prepared.task.num_labels, config) if objective.wrap else model
    optimizer = nnx.Optimizer(trained, make_optimizer(config, 1000), wrt=nnx.Param)
    step = make_train_step(objective.loss, config)
    substitutions = training_substitutions(prepared, config)
    t0 = time.perf_counter()
    fixed = fixed_inputs(objective, trained, prepared, config)
    fixed_seconds = time.perf_counter() - t0 if fixed else 0.0
    seconds = []
    trained.train()
    for i, batch in enumerate(batches):
        batch = with_fixed_inputs(batch, fixed)
        if substitutions is not None:
            batch = {**batch, **dict(zip(("slot_ids", "slot_mask"), substitutions.of(batch["input_ids"]))),
                     "content": substitutions.content(batch["input_ids"], batch["attention_mask"])}
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        t0 = time.perf_counter()
        jax.block_until_ready(step(trained, optimizer, inputs, jax.random.key(i)))
        seconds.append(time.perf_counter() - t0)
    return seconds, fixed_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated; ft is always run (the ratios' base)")
    args = parser.parse_args()
    methods = ["ft"] + [m for m in args.methods.split(",") if m != "ft"]

    base = load_config("rift_minilm")
    prepared = prepare(base)
    # The same batches for every objective: the 64-token bucket's first batches of epoch 0.
    epoch = epoch_batches(prepared, base, 0)
    batches = [b for b in epoch if b["input_ids"].shape[1] == max(base.buckets)]
    batches = batches[: args.warmup + args.steps]
    rows = {}
    for method in methods:
        config = load_config(f"{method}_minilm")
        seconds, once = step_seconds(config, prepared, batches)
        seconds = seconds[args.warmup :]
        rows[method] = {"step_seconds": float(np.mean(seconds)), "step_seconds_std": float(np.std(seconds)), "once_per_run_seconds": once}
        print(f"{method}: {rows[method]['step_seconds']:.3f} s/step, {once:.1f} s once per run", flush=True)
    for method, row in rows.items():
        row["ratio_to_ft"] = row["step_seconds"] / rows["ft"]["step_seconds"]
        row["examples_per_second"] = base.batch_size / row["step_seconds"]
        # A one-epoch run (rift_minilm's protocol) pays the one-off pass once over its steps.
        row["ratio_to_ft_one_epoch"] = (row["step_seconds"] + row["once_per_run_seconds"] / len(epoch)) / rows["ft"]["step_seconds"]
    result = {
        "machine": machine(),
        "batch_size": base.batch_size,
        "sequence_length": max(base.buckets),
        "timed_steps": args.steps,
        "steps_per_epoch": len(epoch),
        "settings": {"ascc_steps": base.ascc.steps, "freelb_steps": base.freelb.steps, "adv_share": base.adv.share},
        "objectives": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "objectives_step_time.json", result)
    lines = [
        f"Training step time per objective, MiniLM-L6, batch {base.batch_size} x {max(base.buckets)} tokens, "
        f"mean of {args.steps} steps after compilation; {result['machine']}.",
        "",
        "| objective | s/step | x ft | train ex/s | once per run (s) | x ft, one epoch |",
        "|---|---|---|---|---|---|",
    ]
    for method, row in rows.items():
        lines.append(
            f"| {method} | {row['step_seconds']:.3f} | {row['ratio_to_ft']:.2f} | {row['examples_per_second']:.1f} "
            f"| {row['once_per_run_seconds']:.1f} | {row['ratio_to_ft_one_epoch']:.2f} |"
        )
    lines += ["", f"Once per run: RIFT's frozen-teacher features of the {len(prepared.splits['train'])} training examples "
              f"(compilation included); one epoch is {len(epoch)} steps."]
    write_text_atomic(RESULTS / "objectives_step_time.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
