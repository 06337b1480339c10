"""Fine-tuning, jaxrobust vs PyTorch transformers, on the same model, split and settings.

Both sides fine-tune MiniLM-L6 (``bundle:minilm-l6``) on the ``rotten_tomatoes`` train split as
``experiments/finetune_minilm_rt.py`` sets it (1 epoch, AdamW lr 5e-5 with 10 % warm-up and linear
decay, weight decay 0.01 except biases/LayerNorm, clipping 1.0, batch 32, max length 64), and are
scored on the same dev/test examples. The PyTorch side is written as a careful user would: dynamic
padding to the longest sequence of each batch, ``torch.set_num_threads`` = all cores.

jaxrobust's number is its steady-state throughput (steps that compiled left out) and, beside it,
the throughput including compilation. Writes ``bench/results/finetune_vs_pytorch.{json,md}``.

    python bench/finetune_vs_pytorch.py [--workdir runs/finetune_minilm_rt] [--train-subset N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from jaxrobust.configs import load_config
from jaxrobust.data import get_task
from jaxrobust.io import write_json_atomic, write_text_atomic
from jaxrobust.models.loading import load_tokenizer
from jaxrobust.train import is_stale, take_subset, train_and_evaluate

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()}-core {model}, CPU only"


def write_results(name: str, result: dict, table: str) -> None:
    """``bench/results/NAME.json`` (``result``) and ``NAME.md`` (``table``), each written whole; the
    table is printed too."""
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / f"{name}.json", result)
    write_text_atomic(RESULTS / f"{name}.md", table)
    print(table)


def run_jaxrobust(config, workdir: Path) -> dict:
    """Train (or resume/reuse) the jaxrobust run; its results.json holds the numbers. A run of this
    config on a split that has since changed is trained again."""
    results = train_and_evaluate(config, workdir, overwrite=is_stale(workdir, config))
    epochs_examples = results["n_train"] * config.epochs
    return {
        "dev_accuracy": results["dev_accuracy"],
        "test_accuracy": results["test_accuracy"],
        "test_macro_f1": results["test_macro_f1"],
        "train_seconds": results["train_seconds"],
        "examples_per_second": results["examples_per_second"],
        "examples_per_second_with_compile": round(epochs_examples / results["train_seconds"], 2),
    }


def run_pytorch(config) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, get_linear_schedule_with_warmup

    from jaxrobust import assets

    transformers.logging.set_verbosity_error()
    torch.manual_seed(config.seed)
    torch.set_num_threads(os.cpu_count())
    path = assets.resolve(config.model)
    task = get_task(config.task)
    splits = task.load()
    tokenizer = load_tokenizer(path)
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=task.num_labels)
    collate = DataCollatorWithPadding(tokenizer)

    def encoded(examples):
        enc = tokenizer([e.text for e in examples], truncation=True, max_length=config.max_length)
        return [{"input_ids": i, "attention_mask": m, "token_type_ids": t, "labels": e.label}
                for i, m, t, e in zip(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], examples)]

    train = encoded(take_subset(splits.train, config.train_subset))
    loader = torch.utils.data.DataLoader(
        train, batch_size=config.batch_size, shuffle=True, collate_fn=collate,
        generator=torch.Generator().manual_seed(config.seed),
    )
    no_decay = lambda name: name.endswith("bias") or "LayerNorm" in name
    groups = [
        {"params": [p for n, p in model.named_parameters() if not no_decay(n)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    total = len(loader) * config.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)

    model.train()
    start = time.perf_counter()
    for _ in range(config.epochs):
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    seconds = time.perf_counter() - start

    model.eval()

    def accuracy(examples):
        preds, labels = [], []
        with torch.no_grad():
            for i in range(0, len(examples), config.eval_batch_size):
                batch = collate(encoded(examples[i : i + config.eval_batch_size]))
                labels.append(batch.pop("labels").numpy())
                preds.append(model(**batch).logits.argmax(-1).numpy())
        return float(np.mean(np.concatenate(preds) == np.concatenate(labels)))

    return {
        "dev_accuracy": accuracy(take_subset(splits.dev, config.eval_subset)),
        "test_accuracy": accuracy(take_subset(splits.test, config.eval_subset)),
        "train_seconds": round(seconds, 2),
        "examples_per_second": round(len(train) * config.epochs / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/finetune_minilm_rt")
    parser.add_argument("--train-subset", type=int, default=0, help="quick check on fewer examples")
    parser.add_argument("--out", default=str(RESULTS / "finetune_vs_pytorch"))
    args = parser.parse_args()
    overrides = [f"--config.train_subset={args.train_subset}"] if args.train_subset else []
    config = load_config("finetune_minilm_rt", overrides)

    jax_side = run_jaxrobust(config, Path(args.workdir))
    torch_side = run_pytorch(config)
    report = {
        "machine": machine(),
        "settings": {k: config[k] for k in ("task", "model", "epochs", "lr", "batch_size", "max_length", "train_subset")},
        "jaxrobust": jax_side,
        "pytorch": torch_side,
        "test_accuracy_gap_points": round(100 * (jax_side["test_accuracy"] - torch_side["test_accuracy"]), 2),
        "throughput_ratio_jax_over_pytorch": round(jax_side["examples_per_second"] / torch_side["examples_per_second"], 3),
    }
    write_json_atomic(f"{args.out}.json", report)
    rows = [
        "| | test accuracy | dev accuracy | train seconds | train examples/s |",
        "|---|---|---|---|---|",
        f"| jaxrobust (JAX) | {jax_side['test_accuracy']:.4f} | {jax_side['dev_accuracy']:.4f} | {jax_side['train_seconds']} "
        f"| {jax_side['examples_per_second']} ({jax_side['examples_per_second_with_compile']} with compilation) |",
        f"| transformers (PyTorch) | {torch_side['test_accuracy']:.4f} | {torch_side['dev_accuracy']:.4f} "
        f"| {torch_side['train_seconds']} | {torch_side['examples_per_second']} |",
    ]
    md = (f"# Fine-tuning MiniLM-L6 on rotten_tomatoes: jaxrobust vs PyTorch\n\nMachine: {report['machine']}. "
          f"Settings: {json.dumps(report['settings'])}.\n\n" + "\n".join(rows) +
          f"\n\nTest accuracy gap (JAX − PyTorch): {report['test_accuracy_gap_points']} points; "
          f"throughput ratio JAX/PyTorch: {report['throughput_ratio_jax_over_pytorch']}.\n")
    write_text_atomic(f"{args.out}.md", md)
    print(md)


if __name__ == "__main__":
    main()
