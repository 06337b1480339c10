"""Sweeps against the separate attacks they replace: whole commands on 100 examples.

The runs are seeds of ``experiments/quickstart.py:ft`` (MiniLM-L6 on ``rotten_tomatoes``, 2 epochs
on 1,200 sentences), trained into ``runs/bench-sweep/seed-S`` when missing. Every command is timed
as a user waits for it, from outside the process (launch to report written), with the persistent
compilation cache warm (an untimed attack fills it first), all in one run of this script:

* **budgets**: ``sweep --budgets B1,...,BK`` on one run against the K commands
  ``attack --budget Bk`` it replaces, for K = 4 and 8;
* **runs**: ``sweep --workdir R1 ... --budgets 0.1`` over 2 and 4 runs against one
  ``attack --budget 0.1`` per run.

The ratio is the sweep's seconds over the sum of the separate commands' (goals: at most 0.5 for
budgets, 0.7 for runs). Each sweep cell is compared with its separate attack's accuracy under
attack (``identical``). Both use the gradient recipe with its defaults (``wordnet-cf``, A2T's
constraints). Writes ``bench/results/sweep_vs_attacks.{json,md}``.

    python bench/sweep_vs_attacks.py [--n 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jaxrobust.configs import load_config
from jaxrobust.train import is_stale, train_and_evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_vs_pytorch import machine, write_results  # noqa: E402

BUDGETS = {4: (0.05, 0.1, 0.2, 0.3), 8: (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3)}
RUNS = (2, 4)
RUN_BUDGET = 0.1


def trained_seeds(folder: Path, count: int) -> list[Path]:
    """``count`` finished quickstart FT runs (seeds 0..count-1) under ``folder``."""
    runs = []
    for seed in range(count):
        config = load_config("quickstart:ft", [f"seed={seed}"])
        workdir = folder / f"seed-{seed}"
        if not (workdir / "results.json").is_file() or is_stale(workdir, config):
            train_and_evaluate(config, workdir, overwrite=is_stale(workdir, config))
        runs.append(workdir)
    return runs


def timed(args: list[str], out: Path) -> tuple[float, dict]:
    """Wall seconds of ``python -m jaxrobust ARGS --out OUT`` and the JSON it wrote."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxrobust", *args, "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    written = out / ("sweep.json" if args[0] == "sweep" else "results.json")
    return round(seconds, 2), json.loads(written.read_text())


def attack(run: Path, budget: float, n: int, scratch: Path) -> tuple[float, float]:
    """Seconds and accuracy under attack of one ``attack`` command."""
    seconds, summary = timed(["attack", "--workdir", str(run), "--budget", str(budget), "--n", str(n)],
                             Path(tempfile.mkdtemp(dir=scratch)) / "report")
    return seconds, summary["accuracy_under_attack"]


def sweep(runs: list[Path], budgets, n: int, scratch: Path) -> tuple[float, list[list[float]]]:
    """Seconds and accuracy under attack ``[runs][budgets]`` of one ``sweep`` command."""
    args = ["sweep", *[a for r in runs for a in ("--workdir", str(r))], "--budgets", ",".join(map(str, budgets)), "--n", str(n)]
    seconds, table = timed(args, Path(tempfile.mkdtemp(dir=scratch)) / "sweep")
    return seconds, table["accuracy_under_attack"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--runs-dir", default="runs/bench-sweep")
    args = parser.parse_args()
    runs = trained_seeds(Path(args.runs_dir).resolve(), max(RUNS))
    scratch = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    attack(runs[0], RUN_BUDGET, args.n, scratch)  # untimed: fills the persistent compilation cache

    separate: dict[tuple[int, float], tuple[float, float]] = {}  # (run, budget) -> (seconds, accuracy)

    def separate_attack(r: int, b: float) -> tuple[float, float]:
        if (r, b) not in separate:
            separate[(r, b)] = attack(runs[r], b, args.n, scratch)
        return separate[(r, b)]

    rows = []
    for k, budgets in BUDGETS.items():
        seconds, acc = sweep(runs[:1], budgets, args.n, scratch)
        alone = [separate_attack(0, b) for b in budgets]
        rows.append(dict(kind="budgets", count=k, budgets=list(budgets), runs=1, sweep_seconds=seconds,
                         separate_seconds=round(sum(s for s, _ in alone), 2),
                         identical=all(abs(a - x) < 1e-9 for a, (_, x) in zip(acc[0], alone))))
    for count in RUNS:
        seconds, acc = sweep(runs[:count], [RUN_BUDGET], args.n, scratch)
        alone = [separate_attack(r, RUN_BUDGET) for r in range(count)]
        rows.append(dict(kind="runs", count=count, budgets=[RUN_BUDGET], runs=count, sweep_seconds=seconds,
                         separate_seconds=round(sum(s for s, _ in alone), 2),
                         identical=all(abs(a[0] - x) < 1e-9 for a, (_, x) in zip(acc, alone))))
    for row in rows:
        row["ratio"] = round(row["sweep_seconds"] / row["separate_seconds"], 3)
    result = dict(machine=machine(), date=time.strftime("%Y-%m-%d"), n=args.n, rows=rows,
                  goals={"budgets": 0.5, "runs": 0.7})
    write_results("sweep_vs_attacks", result, markdown(result))


def markdown(result: dict) -> str:
    lines = [
        f"Sweeps against separate attacks, whole commands, {result['n']} rotten_tomatoes test examples, "
        f"gradient recipe (wordnet-cf, A2T's constraints), compilation cache warm; {result['machine']}, {result['date']}.",
        "",
        "| sweep over | K | sweep s | separate attacks s | ratio | goal | same results |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['kind']} | {row['count']} | {row['sweep_seconds']:.1f} | {row['separate_seconds']:.1f} | "
                     f"{row['ratio']:.2f} | <= {result['goals'][row['kind']]} | {'yes' if row['identical'] else 'NO'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
