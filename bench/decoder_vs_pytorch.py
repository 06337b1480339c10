"""SmolLM2-135M as a classifier, jaxrobust vs PyTorch transformers, at the same shapes in one run:
training (forward, backward, AdamW with clipping) and inference examples/s.

Both sides read the same converted bundle (``bundle:smollm2-135m``: its ``config.json`` and float32
``model.safetensors``; transformers builds ``LlamaForSequenceClassification`` from it) and run the
same ``--steps`` batches of ``experiments/finetune_smollm2_rt.py``'s training split at its 64-token
bucket (batch 16, right-padded, the pad id SmolLM2's eos). jaxrobust runs the training step the
``train`` command runs. Steady state: the mean after ``--warmup`` steps (JAX's first compiles; the
first PyTorch steps warm its allocator); the first steps' seconds are reported beside it.

Writes ``bench/results/decoder_vs_pytorch.{json,md}``.

    python bench/decoder_vs_pytorch.py [--steps 6] [--warmup 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jaxrobust.configs import load_config
from jaxrobust.io import write_json_atomic, write_text_atomic
from jaxrobust.objectives import get_objective
from jaxrobust.train import MODEL_INPUTS, _eval_logits, epoch_batches, make_optimizer, make_train_step, prepare

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_vs_pytorch import RESULTS, machine  # noqa: E402


def time_calls(call, batches) -> list[float]:
    seconds = []
    for batch in batches:
        t0 = time.perf_counter()
        call(batch)
        seconds.append(time.perf_counter() - t0)
    return seconds


def jax_side(config, prepared, batches) -> dict:
    model = prepared.classifier.model
    optimizer = nnx.Optimizer(model, make_optimizer(config, 1000), wrt=nnx.Param)
    step = make_train_step(get_objective("ft").loss, config)
    model.train()
    train = time_calls(lambda b: jax.block_until_ready(step(model, optimizer, {k: v for k, v in b.items() if k in MODEL_INPUTS},
                                                            jax.random.key(0))), batches)
    model.eval()
    infer = time_calls(lambda b: jax.block_until_ready(_eval_logits(model, {k: v for k, v in b.items() if k in MODEL_INPUTS})), batches)
    return {"train": train, "inference": infer}


def torch_side(config, prepared, batches) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification

    from jaxrobust import assets

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    path = assets.resolve(config.model)
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=prepared.task.num_labels, dtype=torch.float32)
    model.config.pad_token_id = prepared.classifier.tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    as_torch = lambda b: {"input_ids": torch.from_numpy(np.asarray(b["input_ids"], np.int64)),
                          "attention_mask": torch.from_numpy(np.asarray(b["attention_mask"])),
                          "labels": torch.from_numpy(np.asarray(b["labels"], np.int64))}

    def train_step(b):
        loss = model(**as_torch(b)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad()

    def infer(b):
        inputs = as_torch(b)
        inputs.pop("labels")
        with torch.no_grad():
            model(**inputs)

    model.train()
    train = time_calls(train_step, batches)
    model.eval()
    return {"train": train, "inference": time_calls(infer, batches)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    config = load_config("finetune_smollm2_rt")
    prepared = prepare(config)
    length = max(config.buckets)
    batches = [b for b in epoch_batches(prepared, config, 0) if b["input_ids"].shape[1] == length][: args.warmup + args.steps]
    sides = {"jaxrobust": jax_side(config, prepared, batches), "pytorch": torch_side(config, prepared, batches)}
    result = {"machine": machine(), "model": config.model, "batch_size": config.batch_size, "sequence_length": length,
              "timed_steps": args.steps, "sides": {}}
    for name, side in sides.items():
        result["sides"][name] = {}
        for kind, seconds in side.items():
            steady = float(np.mean(seconds[args.warmup:]))
            result["sides"][name][kind] = {"examples_per_second": config.batch_size / steady, "step_seconds": steady,
                                           "first_steps_seconds": [round(s, 2) for s in seconds[: args.warmup]]}
    ratio = {k: result["sides"]["jaxrobust"][k]["examples_per_second"] / result["sides"]["pytorch"][k]["examples_per_second"]
             for k in ("train", "inference")}
    result["ratio_jax_over_pytorch"] = ratio
    write_json_atomic(RESULTS / "decoder_vs_pytorch.json", result)
    lines = [f"SmolLM2-135M classifier (`{config.model}`), batch {config.batch_size} x {length} tokens, mean of {args.steps} "
             f"steps after {args.warmup} warm-up steps; {result['machine']}.", "",
             "| | train ex/s | inference ex/s | first train steps (s) | first inference steps (s) |", "|---|---|---|---|---|"]
    for name, side in result["sides"].items():
        lines.append(f"| {name} | {side['train']['examples_per_second']:.2f} | {side['inference']['examples_per_second']:.2f} "
                     f"| {', '.join(map(str, side['train']['first_steps_seconds']))} "
                     f"| {', '.join(map(str, side['inference']['first_steps_seconds']))} |")
    lines += ["", f"jaxrobust / PyTorch: training {ratio['train']:.2f}x, inference {ratio['inference']:.2f}x."]
    write_text_atomic(RESULTS / "decoder_vs_pytorch.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
