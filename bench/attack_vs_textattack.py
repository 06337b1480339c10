"""Attack speed as a user sees it: whole commands of jaxrobust and TextAttack, side by side.

The victim is the MiniLM ``rotten_tomatoes`` model of ``experiments/finetune_minilm_rt.py`` (trained
first if ``runs/finetune_minilm_rt`` holds no finished run). Both tools attack the same seeded
sample of its test split, with the same candidate lists (filtered once on our side and handed to
TextAttack as a custom ``WordSwap``), the same budget and the same sentence-similarity constraint
(each recipe's, on the same all-MiniLM-L6-v2 files: jaxrobust's
:class:`~jaxrobust.attacks.constraints.SimilarityFilter`, TextAttack's ``SBERT``). The part-of-speech
constraint is left out of both: the tools' taggers and rules differ (TextAttack tags with nltk's
data and checks each swap on the current text; jaxrobust masks candidates on the original's tags).

Recipes and candidate sets (:data:`CONFIGS`):

* ``a2t_like``: gradient word importance, top-20 candidates with cosine >= 0.8, whole-text cosine
  similarity >= 0.9, at most 10 % of the words -- TextAttack's GreedyWordSwapWIR("gradient") vs
  jaxrobust's ``gradient`` attack; on the default source (``wordnet-cf``) and on a dense one: plain
  GloVe-50d neighbours (top 20 with cosine >= 0.8: nearly every word has 20);
* ``textfooler_like``: deletion importance, top-50 with cosine >= 0.5, angular similarity >=
  0.840845 of the 15-word window around a change -- TextAttack's GreedyWordSwapWIR("delete") vs
  jaxrobust's ``textfooler`` attack, on the default source.

What is timed, for each recipe and each number of examples (:data:`SIZES`):

* **end to end**: one command per tool, wall clock from launch to report written, measured from
  outside the process (imports, model and encoder loading, compilation, attack, string check,
  report): ``python -m jaxrobust attack ...`` with an empty XLA cache (**cold**) and again with the
  persistent compilation cache it filled (**warm**); TextAttack's runner in its own virtualenv
  (``bench/textattack_env.py``; PyTorch compiles nothing, so it has one figure);
* **steady state**: examples per second of the attack loop alone -- jaxrobust's second pass inside
  one process (after compilation), TextAttack's attack loop -- at the largest size.

Model-FLOP utilisation = useful victim FLOPs per second of the steady state (every sequence at its
real unpadded length; TextAttack's gradient pass, which also computes the weight gradients, counts
3 forward passes, jaxrobust's backward pass to the word embeddings 1) over the matmul peak measured
on this machine. Writes ``bench/results/attack_vs_textattack.{json,md}``.

    python bench/attack_vs_textattack.py [--sizes 100,200,500] [--configs a2t_like,a2t_dense,textfooler_like] [--name STEM]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxrobust import assets
from jaxrobust.attacks.constraints import RECIPES as CONSTRAINTS
from jaxrobust.attacks.counterfit import load_glove
from jaxrobust.attacks.layout import prepare_examples
from jaxrobust.attacks.report import summarize
from jaxrobust.attacks.run import AttackSettings, attack_examples, load_target, sample_indices
from jaxrobust.attacks.sentence_encoder import DEFAULT_ENCODER
from jaxrobust.attacks.synonyms import load_synonyms
from jaxrobust.configs import load_config
from jaxrobust.models import export_classifier
from jaxrobust.train import is_stale, train_and_evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_vs_pytorch import RESULTS, machine, write_results  # noqa: E402
from textattack_env import ensure_textattack_env, run_textattack  # noqa: E402

# name: (our attack, TextAttack recipe, candidate source, top-k, min cosine)
CONFIGS = {
    "a2t_like": ("gradient", "a2t_like", "wordnet-cf", 20, 0.8),
    "a2t_dense": ("gradient", "a2t_like", "glove-50d", 20, 0.8),
    "textfooler_like": ("textfooler", "textfooler_like", "wordnet-cf", 50, 0.5),
}
SIZES = (100, 200, 500)
BUDGET = 0.1
DENSE_WORDS = 50_000  # the most frequent GloVe words, as glove-cf uses


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


def source_spec(source: str, folder: Path) -> str:
    """The ``--synonyms`` value of a candidate source; the dense one is a plain GloVe file written
    once into ``folder`` (outside the temporary folder, so its neighbour table is cached)."""
    if source != "glove-50d":
        return source
    path = folder / f"glove-50d-{DENSE_WORDS}.txt"
    if not path.is_file():
        words, vectors = load_glove(DENSE_WORDS)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            for w, v in zip(words, vectors):
                f.write(w + " " + " ".join(f"{x:.6f}" for x in v) + "\n")
        tmp.replace(path)
    return f"counterfitted:{path}"


def settings_of(config: str, spec: str, n: int) -> AttackSettings:
    attack, _, _, k, min_cos = CONFIGS[config]
    # The recipe's similarity constraint, no part of speech (module docstring).
    return AttackSettings(attack=attack, synonyms=spec, n=n, budget=BUDGET, k=k, min_cos=min_cos, constraints="similarity")


def our_command(workdir: Path, settings: AttackSettings, out: Path) -> list[str]:
    return [sys.executable, "-m", "jaxrobust", "attack", "--workdir", str(workdir), "--attack", settings.attack,
            "--synonyms", settings.synonyms, "--k", str(settings.k), "--min-cos", str(settings.min_cos),
            "--constraints", "similarity", "--n", str(settings.n), "--budget", str(settings.budget), "--out", str(out)]


def ours_end_to_end(workdir: Path, settings: AttackSettings, xla_cache: Path, scratch: Path) -> dict:
    """Wall seconds of one ``attack`` command (launch to report), with the XLA cache in ``xla_cache``."""
    out = Path(tempfile.mkdtemp(dir=scratch)) / "report"
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(xla_cache))
    start = time.perf_counter()
    subprocess.run(our_command(workdir, settings, out), env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    summary = json.loads((out / "results.json").read_text())
    return {"seconds": round(seconds, 2), "attack_success_rate": summary["attack_success_rate"],
            "accuracy_under_attack": summary["accuracy_under_attack"], "mean_queries": summary["mean_queries"]}


def ours_steady(target, examples, indices, table, settings, cfg, peak: float, lengths) -> dict:
    """The attack loop's rate inside one process: the first pass compiles, the second is timed."""
    run = lambda: attack_examples(target.victim, target.params, target.tokenizer, examples, indices, table.candidates, settings, progress=False)
    first_s = _timed(run)
    records, seconds = run()
    summary = summarize(records, seconds)
    # A jaxrobust gradient pass evaluates the clean text (counted in the queries) and adds a backward
    # pass to the word embeddings only: about one more forward pass of matmul FLOPs.
    flops = sum((r["queries"] + r["gradients"]) * encoder_flops(cfg, lengths[r["index"]]) for r in records)
    return {
        "examples_per_second": summary["examples_per_second"],
        "attack_success_rate": summary["attack_success_rate"],
        "mean_queries": summary["mean_queries"],
        "queries_per_second": sum(r["queries"] for r in records) / seconds,
        "seconds": round(seconds, 2),
        "first_pass_seconds": round(first_s, 2),
        "mfu": flops / seconds / peak,
    }


def theirs(model_dir: Path, examples_file: Path, candidates_file: Path, config: str, cfg, peak, lengths) -> dict:
    """TextAttack's whole command (wall clock around its process) and its attack loop's rate."""
    attack, recipe = CONFIGS[config][:2]
    rules = CONSTRAINTS[attack]
    args = [
        "--model", str(model_dir), "--examples", str(examples_file), "--candidates", str(candidates_file),
        "--recipe", recipe, "--budget", str(BUDGET), "--max-length", "64", "--batch-size", "32",
        "--encoder", str(assets.resolve(DEFAULT_ENCODER)), "--similarity", str(rules.similarity), "--metric", rules.metric,
        *(["--window", str(rules.window)] if rules.window else []),
    ]
    start = time.perf_counter()
    out = run_textattack(args)
    whole = time.perf_counter() - start
    gradient_passes = 1 if recipe == "a2t_like" else 0
    flops = sum(
        (e["queries"] + 3 * gradient_passes * (e["status"] != "skipped")) * encoder_flops(cfg, lengths[e["index"]])
        for e in out["per_example"]
    )
    return {
        "seconds": round(whole, 2),
        "examples_per_second": out["examples_per_second"],
        "attack_seconds": out["seconds"],
        "attack_success_rate": out["attack_success_rate"],
        "accuracy_under_attack": out["accuracy_under_attack"],
        "mean_queries": out["mean_queries"],
        "queries_per_second": sum(e["queries"] for e in out["per_example"]) / out["seconds"],
        "mfu": flops / out["seconds"] / peak,
    }


def candidate_lists(target, examples, table, k: int) -> dict[str, list[str]]:
    """``{word: candidates}`` exactly as our attacks see them (after the layout's token filter)."""
    lists: dict[str, list[str]] = {}
    for ae in prepare_examples(target.tokenizer, examples, table.candidates, target.victim.max_length, k):
        for w, cands in zip(ae.slot_words, ae.candidates):
            lists[ae.word(w).lower()] = [c.lower() for c in cands]
    return lists


def _inputs(scratch: Path, target, test, table, name: str, n: int) -> tuple[Path, Path, dict[int, int]]:
    """TextAttack's inputs for the seeded ``n`` examples of ``test`` (the command's own sample):
    the examples file, the candidates file (:func:`candidate_lists`) and each example's tokens."""
    indices = sample_indices(len(test), n, seed=0)
    examples = [test[i] for i in indices]
    examples_file = scratch / f"examples-{n}.jsonl"
    examples_file.write_text("".join(json.dumps({"index": int(i), "text": e.text, "label": e.label}) + "\n"
                                     for i, e in zip(indices, examples)))
    cands = scratch / f"candidates-{name}-{n}.json"
    cands.write_text(json.dumps(candidate_lists(target, examples, table, CONFIGS[name][3])))
    lengths = {int(i): len(target.tokenizer(e.text, truncation=True, max_length=64)["input_ids"]) for i, e in zip(indices, examples)}
    return examples_file, cands, lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/finetune_minilm_rt")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated numbers of examples")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of the configurations")
    parser.add_argument("--name", default="attack_vs_textattack",
                        help="results file stem under bench/results/ (a partial run, e.g. only n = 100, under its own name)")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.sizes.split(","))

    workdir = Path(args.workdir).resolve()
    config = load_config("finetune_minilm_rt")
    if not (workdir / "results.json").is_file() or is_stale(workdir, config):  # none yet, or on an old split
        train_and_evaluate(config, workdir, overwrite=is_stale(workdir, config))
    target = load_target(str(workdir))
    cfg = target.classifier.config
    test = target.task.load().test
    peak = matmul_peak()
    print(f"matmul peak {peak / 1e9:.1f} GFLOP/s")
    ta_env = ensure_textattack_env()

    scratch = Path(tempfile.mkdtemp(prefix="attack-bench-"))
    model_dir = export_classifier(target.classifier, scratch / "hf", target.task.label_names)
    folder = workdir.parent / "bench-assets"
    folder.mkdir(exist_ok=True)

    rows = {}
    previous = RESULTS / f"{args.name}.json"
    if previous.is_file():  # configurations not re-run keep their last measured figures
        earlier = json.loads(previous.read_text())
        rows = earlier.get("configs", {})
        for row in rows.values():
            row.setdefault("machine", earlier["machine"])
            row.setdefault("matmul_peak_gflops", earlier["matmul_peak_gflops"])
    # The first process after an install byte-compiles the tool's Python files and reads them from
    # disk (TextAttack's first command here took longer on 100 examples than its second on 200): a
    # cost of installing, not of a command, so each tool runs once, untimed, on 2 examples.
    for name in args.configs.split(",")[:1]:
        spec = source_spec(CONFIGS[name][2], folder)
        table = load_synonyms(spec, k=CONFIGS[name][3], min_cos=CONFIGS[name][4])
        examples_file, cands, lengths = _inputs(scratch, target, test, table, name, 2)
        ours_end_to_end(workdir, settings_of(name, spec, 2), Path(tempfile.mkdtemp(dir=scratch)), scratch)
        theirs(model_dir, examples_file, cands, name, cfg, peak, lengths)
    for name in args.configs.split(","):
        attack, recipe, source, k, min_cos = CONFIGS[name]
        spec = source_spec(source, folder)
        table = load_synonyms(spec, k=k, min_cos=min_cos)  # built (and cached) before anything is timed
        row = {"attack": attack, "recipe": recipe, "synonyms": source, "k": k, "min_cos": min_cos, "sizes": {},
               "machine": machine(), "matmul_peak_gflops": round(peak / 1e9, 1)}
        for n in sizes:
            indices = sample_indices(len(test), n, seed=0)  # the command's own sample (seed 0)
            examples = [test[i] for i in indices]
            examples_file, cands, lengths = _inputs(scratch, target, test, table, name, n)
            settings = settings_of(name, spec, n)
            xla = Path(tempfile.mkdtemp(dir=scratch, prefix="xla-"))  # empty: a cold start
            cell = {"jaxrobust_cold": ours_end_to_end(workdir, settings, xla, scratch),
                    "jaxrobust_warm": ours_end_to_end(workdir, settings, xla, scratch),
                    "textattack": theirs(model_dir, examples_file, cands, name, cfg, peak, lengths)}
            for which in ("cold", "warm"):
                cell[f"speedup_{which}"] = cell["textattack"]["seconds"] / cell[f"jaxrobust_{which}"]["seconds"]
            if n == sizes[-1]:
                cell["jaxrobust_steady"] = ours_steady(target, examples, indices, table, settings, cfg, peak, lengths)
                cell["speedup_steady"] = cell["jaxrobust_steady"]["examples_per_second"] / cell["textattack"]["examples_per_second"]
            print(name, n, json.dumps(cell))
            row["sizes"][str(n)] = cell
        rows[name] = row
        # Written after every configuration: an interrupted run keeps the ones it finished.
        result = {
            "machine": machine(),
            "budget": BUDGET,
            "textattack": ta_env.get("textattack_version", "0.3.11"),
            "constraints": {r: f"{CONSTRAINTS[c[0]].tag.replace('pos-', '')} ({DEFAULT_ENCODER}); no part of speech on either side"
                            for r, c in CONFIGS.items()},
            "model": "bundle:minilm-l6 fine-tuned on rotten_tomatoes (experiments/finetune_minilm_rt.py)",
            "matmul_peak_gflops": round(peak / 1e9, 1),
            "configs": rows,
        }
        write_results(args.name, result, markdown(result))


def markdown(result: dict) -> str:
    lines = [
        f"Whole commands on rotten_tomatoes test examples, MiniLM-L6, budget {result['budget']:g}; {result['machine']} "
        f"(matmul peak {result['matmul_peak_gflops']} GFLOP/s). Seconds from launch to report written; cold: empty XLA "
        "cache, warm: the persistent compilation cache of the cold run. Speedup = TextAttack's seconds / jaxrobust's.",
        "",
        *(f"Constraints of {r}: {c}." for r, c in result.get("constraints", {}).items()),
        # Configurations not re-run keep the figures of their own run.
        *(f"{name}: an earlier run, on {row['machine']} (matmul peak {row['matmul_peak_gflops']} GFLOP/s)."
          for name, row in result["configs"].items() if row.get("machine", result["machine"]) != result["machine"]),
        "",
        "| config | candidates | n | TextAttack s | jaxrobust cold s | jaxrobust warm s | speedup cold | speedup warm | success jaxrobust / TextAttack |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["configs"].items():
        for n, cell in row["sizes"].items():
            ours, ta = cell["jaxrobust_cold"], cell["textattack"]
            lines.append(
                f"| {name} | {row['synonyms']} (k{row['k']}, cos >= {row['min_cos']:g}) | {n} | {ta['seconds']:.1f} | "
                f"{ours['seconds']:.1f} | {cell['jaxrobust_warm']['seconds']:.1f} | {cell['speedup_cold']:.2f}x | "
                f"{cell['speedup_warm']:.2f}x | {ours['attack_success_rate']:.3f} / {ta['attack_success_rate']:.3f} |"
            )
    lines += [
        "",
        "Steady state (the attack loop alone, at the largest n): jaxrobust's second pass in one process, TextAttack's attack loop.",
        "",
        "| config | n | jaxrobust ex/s | TextAttack ex/s | speedup | jaxrobust first pass s | MFU jaxrobust / TextAttack | mean queries jaxrobust / TextAttack | queries/s jaxrobust / TextAttack |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["configs"].items():
        for n, cell in row["sizes"].items():
            if "jaxrobust_steady" not in cell:
                continue
            ours, ta = cell["jaxrobust_steady"], cell["textattack"]
            lines.append(
                f"| {name} | {n} | {ours['examples_per_second']:.2f} | {ta['examples_per_second']:.2f} | "
                f"{cell['speedup_steady']:.2f}x | {ours['first_pass_seconds']:.1f} | {ours['mfu']:.1%} / {ta['mfu']:.1%} | "
                f"{ours['mean_queries']:.1f} / {ta['mean_queries']:.1f} | {_qps(ours)} / {_qps(ta)} |"
            )
    rate = {name: cell["jaxrobust_steady"].get("queries_per_second") for name, row in result["configs"].items()
            for cell in row["sizes"].values() if "jaxrobust_steady" in cell}
    if rate.get("a2t_like") and rate.get("a2t_dense"):  # item 3 of the speed issue: dense within 1.5x per query
        lines += ["", f"Per query, the gradient search on the dense set runs at {rate['a2t_dense'] / rate['a2t_like']:.2f}x "
                      "its rate on the default set (queries per second of the steady state)."]
    return "\n".join(lines) + "\n"


def _qps(side: dict) -> str:
    return f"{side['queries_per_second']:.1f}" if "queries_per_second" in side else "–"


if __name__ == "__main__":
    main()
