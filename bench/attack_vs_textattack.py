"""Attack throughput: every jaxrobust attack, and two recipes side by side with TextAttack.

The victim is the MiniLM ``rotten_tomatoes`` model of ``experiments/finetune_minilm_rt.py`` (trained
first if ``runs/finetune_minilm_rt`` holds no finished run). Both tools attack the same seeded
sample of its test split, with the same candidate lists (``wordnet-cf``, the default source, filtered
once on our side and handed to TextAttack as a custom ``WordSwap``), the same budget and the same
sentence-similarity constraint (each recipe's, on the same all-MiniLM-L6-v2 files: jaxrobust's
:class:`~jaxrobust.attacks.constraints.SimilarityFilter`, TextAttack's ``SBERT``). The part-of-speech
constraint is left out of both: the tools' taggers and rules differ (TextAttack tags with nltk's
data and checks each swap on the current text; jaxrobust masks candidates on the original's tags).

* ``a2t_like``: gradient word importance, top-20 candidates with cosine >= 0.8, whole-text cosine
  similarity >= 0.9, at most 10 % of the words -- TextAttack's GreedyWordSwapWIR("gradient") vs
  jaxrobust's ``gradient`` attack;
* ``textfooler_like``: deletion importance, top-50 with cosine >= 0.5, angular similarity >=
  0.840845 of the 15-word window around a change -- TextAttack's GreedyWordSwapWIR("delete") vs
  jaxrobust's ``textfooler`` attack.

TextAttack runs in its own virtualenv (``bench/textattack_env.py``) on the same model exported to
Hugging Face format, its tokenizer's maximum length set to the training length (64) so it does not
pad to 512. jaxrobust's throughput is measured on a second pass, after compilation; the first pass
gives the compile time. Model-FLOP utilisation = useful model FLOPs per second (every sequence
evaluated, at its real unpadded length; TextAttack's gradient pass, which also computes the weight
gradients, counts 3 forward passes, jaxrobust's backward pass to the word embeddings counts 1) over
the matmul peak measured on this machine. Writes ``bench/results/attack_vs_textattack.{json,md}``.

    python bench/attack_vs_textattack.py [--n 200] [--skip-textattack]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust import assets
from jaxrobust.attacks.constraints import RECIPES as CONSTRAINTS
from jaxrobust.attacks.layout import prepare_examples
from jaxrobust.attacks.sentence_encoder import DEFAULT_ENCODER
from jaxrobust.attacks.run import AttackSettings, attack_examples, load_target, sample_indices
from jaxrobust.attacks.report import summarize
from jaxrobust.attacks.synonyms import load_synonyms
from jaxrobust.configs import load_config
from jaxrobust.io import write_json_atomic, write_text_atomic
from jaxrobust.models import export_classifier
from jaxrobust.train import is_stale, train_and_evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_vs_pytorch import machine  # noqa: E402
from textattack_env import ensure_textattack_env, run_textattack  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RECIPES = {
    # recipe: (our attack, top-k, min cosine)
    "a2t_like": ("gradient", 20, 0.8),
    "textfooler_like": ("textfooler", 50, 0.5),
}
BUDGET = 0.1
SYNONYMS = "wordnet-cf"


def encoder_flops(cfg, length: int) -> float:
    """Forward FLOPs of the encoder + head on one sequence of ``length`` real tokens."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, length
    per_layer = 2 * n * (4 * h * h + 2 * h * i) + 4 * n * n * h  # projections, FFN, scores + mixing
    return cfg.num_layers * per_layer + 2 * h * h + 2 * h * cfg.num_labels


def matmul_peak() -> float:
    """FLOP/s of a large float32 matmul on this machine (best of 3)."""
    a = jnp.ones((2048, 2048), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(3))
    return 2 * 2048**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours(target, examples, indices, table, attack: str, k: int, budget: float, cfg, peak: float, lengths) -> dict:
    """Two passes of one jaxrobust attack: the first compiles, the second is timed."""
    # The recipe's similarity constraint, no part of speech (module docstring).
    settings = AttackSettings(attack=attack, synonyms=table.source, n=len(examples), budget=budget, k=k, min_cos=0.0,
                              constraints="similarity")
    first_s = _timed(lambda: attack_examples(target.victim, target.params, target.tokenizer, examples, indices, table.candidates, settings, progress=False))
    records, seconds = attack_examples(target.victim, target.params, target.tokenizer, examples, indices, table.candidates, settings, progress=False)
    summary = summarize(records, seconds)
    # A jaxrobust gradient pass evaluates the clean text (counted in the queries) and adds a backward
    # pass to the word embeddings only: about one more forward pass of matmul FLOPs.
    flops = sum((r["queries"] + r["gradients"]) * encoder_flops(cfg, lengths[r["index"]]) for r in records)
    return {
        "examples_per_second": summary["examples_per_second"],
        "attack_success_rate": summary["attack_success_rate"],
        "accuracy_under_attack": summary["accuracy_under_attack"],
        "clean_accuracy": summary["clean_accuracy"],
        "mean_queries": summary["mean_queries"],
        "mean_gradients": summary["mean_gradients"],
        "perturbed_word_pct": summary["perturbed_word_pct"],
        "seconds": round(seconds, 2),
        "compile_seconds": round(max(0.0, first_s - seconds), 2),
        "mfu": flops / seconds / peak,
    }


def theirs(model_dir: Path, examples_file: Path, candidates_file: Path, recipe: str, budget: float, cfg, peak, lengths) -> dict:
    rules = CONSTRAINTS[RECIPES[recipe][0]]
    out = run_textattack([
        "--model", str(model_dir), "--examples", str(examples_file), "--candidates", str(candidates_file),
        "--recipe", recipe, "--budget", str(budget), "--max-length", "64", "--batch-size", "32",
        "--encoder", str(assets.resolve(DEFAULT_ENCODER)), "--similarity", str(rules.similarity), "--metric", rules.metric,
        *(["--window", str(rules.window)] if rules.window else []),
    ])
    gradient_passes = 1 if recipe == "a2t_like" else 0
    flops = sum(
        (e["queries"] + 3 * gradient_passes * (e["status"] != "skipped")) * encoder_flops(cfg, lengths[e["index"]])
        for e in out["per_example"]
    )
    return {
        "examples_per_second": out["examples_per_second"],
        "attack_success_rate": out["attack_success_rate"],
        "accuracy_under_attack": out["accuracy_under_attack"],
        "clean_accuracy": out["clean_accuracy"],
        "mean_queries": out["mean_queries"],
        "perturbed_word_pct": out["perturbed_word_pct"],
        "seconds": out["seconds"],
        "padded_length": 64,
        "mfu": flops / out["seconds"] / peak,
    }


def candidate_lists(target, examples, table, k: int) -> dict[str, list[str]]:
    """``{word: candidates}`` exactly as our attacks see them (after the layout's token filter)."""
    lists: dict[str, list[str]] = {}
    for ae in prepare_examples(target.tokenizer, examples, table.candidates, target.victim.max_length, k):
        for w, cands in zip(ae.slot_words, ae.candidates):
            lists[ae.word(w).lower()] = [c.lower() for c in cands]
    return lists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/finetune_minilm_rt")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--skip-textattack", action="store_true", help="re-measure jaxrobust only; keep TextAttack's last figures")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated subset of the recipes")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    config = load_config("finetune_minilm_rt")
    if not (workdir / "results.json").is_file() or is_stale(workdir, config):  # none yet, or on an old split
        train_and_evaluate(config, workdir, overwrite=is_stale(workdir, config))
    target = load_target(str(workdir))
    cfg = target.classifier.config
    test = target.task.load().test
    indices = sample_indices(len(test), args.n, seed=0)
    examples = [test[i] for i in indices]
    lengths = {int(i): len(target.tokenizer(e.text, truncation=True, max_length=64)["input_ids"]) for i, e in zip(indices, examples)}
    peak = matmul_peak()
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s")

    tmp = Path(tempfile.mkdtemp(prefix="attack-bench-"))
    model_dir = export_classifier(target.classifier, tmp / "hf", target.task.label_names)
    examples_file = tmp / "examples.jsonl"
    examples_file.write_text("".join(json.dumps({"index": int(i), "text": e.text, "label": e.label}) + "\n" for i, e in zip(indices, examples)))
    if not args.skip_textattack:
        ensure_textattack_env()

    recipes = {}
    previous = RESULTS / "attack_vs_textattack.json"
    if previous.is_file():  # recipes not re-run keep their last measured figures
        recipes = json.loads(previous.read_text()).get("recipes", {})
    for recipe in args.recipes.split(","):
        attack, k, min_cos = RECIPES[recipe]
        table = load_synonyms(SYNONYMS, k=k, min_cos=min_cos)
        row = {"jaxrobust": ours(target, examples, indices, table, attack, k, BUDGET, cfg, peak, lengths)}
        print(recipe, "jaxrobust", row["jaxrobust"])
        if args.skip_textattack and "textattack" in recipes.get(recipe, {}):  # keep its last measurement
            row["textattack"] = recipes[recipe]["textattack"]
            row["speedup"] = row["jaxrobust"]["examples_per_second"] / row["textattack"]["examples_per_second"]
        if not args.skip_textattack:
            cands = tmp / f"candidates-{recipe}.json"
            cands.write_text(json.dumps(candidate_lists(target, examples, table, k)))
            row["textattack"] = theirs(model_dir, examples_file, cands, recipe, BUDGET, cfg, peak, lengths)
            row["speedup"] = row["jaxrobust"]["examples_per_second"] / row["textattack"]["examples_per_second"]
            print(recipe, "textattack", row["textattack"], "speedup", round(row["speedup"], 2))
        recipes[recipe] = row

    result = {
        "machine": machine(),
        "n": args.n,
        "budget": BUDGET,
        "synonyms": SYNONYMS,
        "constraints": {r: f"{CONSTRAINTS[a].tag.replace('pos-', '')} ({DEFAULT_ENCODER}); no part of speech on either side"
                        for r, (a, _, _) in RECIPES.items()},
        "model": "bundle:minilm-l6 fine-tuned on rotten_tomatoes (experiments/finetune_minilm_rt.py)",
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "recipes": recipes,
    }
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / "attack_vs_textattack.json", result)
    write_text_atomic(RESULTS / "attack_vs_textattack.md", markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = [
        f"Attacks on {result['n']} rotten_tomatoes test examples, MiniLM-L6, budget {result['budget']:g}, "
        f"{result['synonyms']} candidates; {result['machine']} (matmul peak {result['matmul_peak_gflops']} GFLOP/s).",
        "",
        *(f"Constraints of {r}: {c}." for r, c in result.get("constraints", {}).items()),
        "",
        "| recipe | tool | examples/s | success rate | acc. under attack | mean queries | compile s | MFU | speedup |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for recipe, row in result["recipes"].items():
        for tool in ("jaxrobust", "textattack"):
            if tool not in row:
                continue
            r = row[tool]
            speed = f"{row['speedup']:.1f}x" if tool == "jaxrobust" and "speedup" in row else ""
            lines.append(
                f"| {recipe} | {tool} | {r['examples_per_second']:.2f} | {r['attack_success_rate']:.3f} | "
                f"{r['accuracy_under_attack']:.3f} | {r['mean_queries']:.1f} | {r.get('compile_seconds', '')} | "
                f"{r['mfu']:.1%} | {speed} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
