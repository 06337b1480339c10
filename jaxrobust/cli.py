"""``python -m jaxrobust COMMAND``: flags only; the work lives in the modules."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from jaxrobust import frontier
from jaxrobust.attacks.language_model import DEFAULT_LM, MAX_DROP, WINDOW
from jaxrobust.attacks.shapes import ROWS
from jaxrobust.configs import config_reference
from jaxrobust.errors import JaxRobustError


def _assets_list(args) -> int:
    from jaxrobust import assets

    rows = [("id", "kind", "size", "license", "cached", "description")]
    for b in assets.BUNDLES.values():
        cached = "yes" if assets.is_cached(b) else "no"
        rows.append((assets.BUNDLE_PREFIX + b.id, b.kind, f"{b.size_mb} MB", b.license, cached, b.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    print(f"cache: {assets.cache_dir()}  (set JAXROBUST_CACHE to move it)")
    return 0


def _assets_fetch(args) -> int:
    from jaxrobust import assets

    print(assets.fetch_bundle(args.id))
    return 0


def _parity(args) -> int:
    from jaxrobust.parity import TOLERANCE, run_parity

    result = run_parity(args.ref, args.num_labels)
    print(f"last_hidden_state max_abs_diff={result.hidden_diff:.3e}")
    print(f"logits max_abs_diff={result.logits_diff:.3e}")
    print(f"max_abs_diff={result.max_abs_diff:.3e}")
    return 0 if result.max_abs_diff <= TOLERANCE else 1


def _train(args) -> int:
    from jaxrobust.configs import load_config
    from jaxrobust.study import is_study
    from jaxrobust.train import train_and_evaluate

    config = load_config(args.config, args.overrides)
    if is_study(config):
        if args.command == "train":
            raise JaxRobustError(f"{args.config} is a study, not a training run: run it with `python -m jaxrobust experiment`")
        return _study(config, args.workdir)
    results = train_and_evaluate(config, args.workdir, overwrite=args.overwrite)
    _print_table(results, ("task", "model", "dev_accuracy", "test_accuracy", "test_macro_f1", "train_seconds", "examples_per_second"))
    return 0


def _study(config, workdir) -> int:
    from pathlib import Path

    from jaxrobust.study import run_study
    from jaxrobust.transfer import is_transfer, run_transfer
    from jaxrobust.tuning import is_tuning, run_tuning

    workdir = Path(workdir)
    if is_transfer(config):
        found = run_transfer(config, workdir)
        print((workdir / "summary.md").read_text())
        print(f"{len(found['missing'])} missing cells; rows: {workdir / 'transfer.csv'}; heatmaps: {workdir}/heatmap_*.png; "
              f"forgetting: {workdir / 'forgetting.md'}")
        return 0
    if is_tuning(config):
        table = run_tuning(config, workdir)
        print((workdir / "tuning_table.md").read_text())
        print(f"{len(table['missing'])} missing settings; table: {workdir / 'tuning_table.md'}")
        return 0
    table = run_study(config, workdir)
    print((workdir / "robustness_table.md").read_text())
    print("\n".join(frontier.summary_lines(table["frontier"])) + "\n")
    print(f"{len(table['missing'])} missing cells; table: {workdir / 'robustness_table.md'}; plot: {workdir / 'robustness.png'}; "
          f"frontier: {workdir / 'frontier.png'}; summary: {workdir / 'summary.md'}")
    pages = sorted(workdir.glob("runs/*/attacks/*/examples.html"))
    if len(pages) > 8:  # a whole study: where they are, not every one
        print(f"adversarial examples: {len(pages)} pages, {workdir}/runs/*/attacks/*/examples.html")
    else:
        for page in pages:
            print(f"adversarial examples: {page}")
    return 0


def _evaluate(args) -> int:
    from jaxrobust.data.conventions import conventions
    from jaxrobust.train import evaluate, load_run

    config, prepared = load_run(args.workdir)
    metrics = evaluate(
        prepared.classifier.model, prepared.splits[args.split], config,
        conventions(prepared.classifier.tokenizer).pad_id, prepared.task.num_labels,
    )
    _print_table({"split": args.split, **metrics}, ("split", "accuracy", "macro_f1", "loss", "n"))
    return 0


def _export(args) -> int:
    from jaxrobust.models import export_classifier
    from jaxrobust.train import load_run

    _, prepared = load_run(args.workdir)
    out = export_classifier(
        prepared.classifier, args.out, prepared.task.label_names, force=args.force, run=str(Path(args.workdir).resolve())
    )
    print(out)
    return 0


def _recheck(args) -> int:
    from jaxrobust.attacks.recheck import recheck

    r = recheck(args.workdir, args.report)
    print(f"transformers {r['transformers']}: {r['successes_confirmed']} of {r['successes']} successes flip the exported model too; "
          f"{r['failures_flipped_in_transformers']} failures flip it; predictions agree on {r['clean_predictions_agree']} of "
          f"{r['n_attacked']} originals and {r['perturbed_predictions_agree']} of {r['n_attacked']} perturbed texts; "
          f"max |Δp| {r['max_abs_prob_diff']:.1e}")
    return 0 if r["confirmed"] else 1


def _data_describe(args) -> int:
    from jaxrobust.data import get_task
    from jaxrobust.data.describe import describe_task

    print(describe_task(get_task(args.task, args.text_field, args.label_field, args.text_b_field)))
    return 0


def _synonyms_describe(args) -> int:
    from jaxrobust.attacks.synonyms import describe, load_synonyms

    print(describe(load_synonyms(args.source, k=args.k, min_cos=args.min_cos)))
    return 0


def _attack(args) -> int:
    from pathlib import Path

    from jaxrobust.attacks.report import LOW_CONFIDENCE, validity_line
    from jaxrobust.attacks.run import AttackSettings, fit_to_split, load_target, report_dir, run_attack
    from jaxrobust.attacks.synonyms import load_synonyms

    settings = AttackSettings(
        attack=args.attack, synonyms=args.synonyms, n=args.n, budget=args.budget, seed=args.seed,
        k=args.k, min_cos=args.min_cos, batch_size=args.batch_size,
        population=args.population, generations=args.generations, ascc_steps=args.ascc_steps,
        **({"encoder": args.encoder} if args.encoder else {}), constraints=args.constraints, similarity=args.similarity_threshold, window=args.window,
        lm_filter=args.lm_filter or "", split=args.split, query_budget=args.query_budget, mlm=args.mlm or "",
    )
    target = load_target(args.workdir, args.model, args.task, args.max_length,
                         args.text_field, args.label_field, args.text_b_field)
    # BERT-Attack's candidates come from its masked LM, in context.
    table = None if settings.mlm else load_synonyms(settings.synonyms, k=settings.k, min_cos=settings.min_cos)
    settings = fit_to_split(settings, len(target.splits[settings.split]))  # the report is named after the n attacked
    out = Path(args.out) if args.out else report_dir(args.workdir or ".", settings)
    summary = run_attack(target, settings, table, out)
    _print_table(summary, ("attack", "synonyms", "constraints_tag", "n", "clean_accuracy", "accuracy_under_attack", "attack_success_rate",
                           "perturbed_word_pct", "mean_queries", "seconds", "examples_per_second"))
    print(validity_line(summary["validity"]))
    correct, rate = summary["n"] - summary["skipped_misclassified"], summary["success_rate_confident"]
    if summary["low_confidence_n"] > correct / 4:  # then the success rate says more about the model's doubt
        print(f"warning: {summary['low_confidence_n']} of {correct} correctly classified examples have a clean "
              f"p(true label) below {LOW_CONFIDENCE:g}; success rate over the others: "
              f"{'n/a' if rate is None else f'{rate:.4f}'}", file=sys.stderr)
    print(f"report: {out.absolute()}")
    return 0


def _sweep(args) -> int:
    from pathlib import Path

    from jaxrobust.attacks import constraints
    from jaxrobust.attacks.run import CANDIDATE_DEFAULTS, load_target
    from jaxrobust.attacks.sentence_encoder import DEFAULT_ENCODER, SentenceEncoder
    from jaxrobust.attacks.sweep import check_sweepable, parse_budgets, sweep, write_sweep
    from jaxrobust.attacks.synonyms import load_synonyms
    from jaxrobust.outputs import SWEEP_FILES, check_output_dir, claim_output_dir

    budgets = parse_budgets(args.budgets)  # before the slow loading: a typo fails at once
    if args.n < 1:
        raise JaxRobustError(f"--n must be at least 1, got {args.n}")
    k, min_cos = CANDIDATE_DEFAULTS["gradient"]
    k = k if args.k is None else args.k  # load_synonyms refuses k < 1
    rules = constraints.parse(args.constraints, "gradient", args.similarity_threshold)
    targets = [load_target(w) for w in args.workdir]
    check_sweepable(targets)  # before the synonym table, which may take minutes to build
    if args.out:
        check_output_dir(args.out, SWEEP_FILES)  # before the sweep: never replaces a user's files
    table = load_synonyms(args.synonyms, k=k, min_cos=min_cos if args.min_cos is None else args.min_cos)
    encoder = SentenceEncoder(args.encoder or DEFAULT_ENCODER) if rules.similarity is not None else None
    result = sweep(targets, budgets, table.candidates, n=args.n, seed=args.seed, k=k, rules=rules, encoder=encoder)
    # Named after the constraints and the examples attacked (at most the test split), like the attack reports.
    out = Path(args.out) if args.out else Path(args.workdir[0]) / "sweeps" / f"gradient-{rules.tag}-n{result['n']}-s{args.seed}"
    claim_output_dir(out, SWEEP_FILES)
    write_sweep(result, out)
    print((out / "sweep.md").read_text())
    print(f"report: {out.absolute()}")
    return 0


def _print_table(row: dict, keys: tuple[str, ...]) -> None:
    width = max(len(k) for k in keys)
    for k in keys:
        v = row[k]
        print(f"{k.ljust(width)}  {v:.4f}" if isinstance(v, float) else f"{k.ljust(width)}  {'n/a' if v is None else v}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxrobust", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_assets = sub.add_parser("assets", help="registry bundles: list or fetch")
    assets_sub = p_assets.add_subparsers(dest="assets_command", required=True)
    assets_sub.add_parser("list", help="every known bundle, its size, license and cache state").set_defaults(fn=_assets_list)
    p_fetch = assets_sub.add_parser("fetch", help="download, verify and unpack one bundle")
    p_fetch.add_argument("id", help="bundle id, e.g. bundle:minilm-l6")
    p_fetch.set_defaults(fn=_assets_fetch)

    p_parity = sub.add_parser("parity", help="compare a model with the transformers PyTorch reference")
    p_parity.add_argument("ref", help="model directory, bundle:ID or hub id")
    p_parity.add_argument("--num-labels", type=int, default=2)
    p_parity.set_defaults(fn=_parity)

    p_data = sub.add_parser("data", help="tasks and their splits")
    data_sub = p_data.add_subparsers(dest="data_command", required=True)
    p_describe = data_sub.add_parser("describe", help="sizes, label balance and lengths of a task")
    p_describe.add_argument("task", help="task name, csv:PATH or jsonl:PATH")
    p_describe.add_argument("--text-field", default="text")
    p_describe.add_argument("--label-field", default="label")
    p_describe.add_argument("--text-b-field", default=None)
    p_describe.set_defaults(fn=_data_describe)

    for name, help_text in (
        ("train", "fine-tune a model as an experiment config says"),
        ("experiment", "run an experiment config: a training run, or a study of many (make experiment)"),
    ):
        p_train = sub.add_parser(
            name, help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="settings of a training run (defaults; an experiment config may change them):\n" + config_reference(),
        )
        p_train.add_argument("--config", required=True, help="experiments/NAME.py[:ARG] or NAME")
        p_train.add_argument("--workdir", required=True, help="run directory (resumed if it holds the same run)")
        p_train.add_argument("--overwrite", action="store_true", help="replace a run with a different config")
        p_train.set_defaults(fn=_train)

    p_eval = sub.add_parser("evaluate", help="evaluate a run's best-on-dev checkpoint")
    p_eval.add_argument("--workdir", required=True)
    p_eval.add_argument("--split", default="test", choices=("train", "dev", "test"))
    p_eval.set_defaults(fn=_evaluate)

    p_export = sub.add_parser("export", help="write a run's best model in Hugging Face format")
    p_export.add_argument("--workdir", required=True)
    p_export.add_argument("--out", required=True, help="a new or empty folder")
    p_export.add_argument("--force", action="store_true", help="replace a previous export in --out")
    p_export.set_defaults(fn=_export)

    p_recheck = sub.add_parser("recheck", help="re-run an attack report's texts in PyTorch transformers (the run exported)")
    p_recheck.add_argument("--workdir", required=True, help="the attacked training run")
    p_recheck.add_argument("--report", required=True, help="its attack report folder (examples.jsonl)")
    p_recheck.set_defaults(fn=_recheck)

    p_syn = sub.add_parser("synonyms", help="synonym candidate sources")
    syn_sub = p_syn.add_subparsers(dest="synonyms_command", required=True)
    p_sd = syn_sub.add_parser("describe", help="coverage and sample neighbours of a source")
    p_sd.add_argument("source", help="wordnet-cf, glove-cf, wordnet, counterfitted:PATH or embedding:MODEL")
    p_sd.add_argument("--k", type=int, default=50, help="candidates per word at most")
    p_sd.add_argument("--min-cos", type=float, default=0.5, help="minimum cosine (sources with scores)")
    p_sd.set_defaults(fn=_synonyms_describe)

    p_attack = sub.add_parser("attack", help="attack a seeded sample of the test split")
    p_attack.add_argument("--workdir", help="training run whose best-on-dev model is attacked")
    p_attack.add_argument("--model", help="or: a classifier (dir, bundle:ID, hub id) ...")
    p_attack.add_argument("--task", help="... and the task whose test split is attacked")
    p_attack.add_argument("--max-length", type=int, default=64, help="token limit with --model")
    p_attack.add_argument("--text-field", help="with --model --task csv:/jsonl:PATH: the text column (default text)")
    p_attack.add_argument("--label-field", help="... the label column (default label)")
    p_attack.add_argument("--text-b-field", help="... the second text of a pair task (default none)")
    p_attack.add_argument("--attack", default="gradient", help="gradient, textfooler, pwws, genetic, ascc or bertattack")
    p_attack.add_argument("--mlm", default=None, metavar="REF",
                          help="bertattack: the masked LM whose predictions are the candidates (e.g. bert-base-uncased)")
    p_attack.add_argument("--synonyms", default=None,
                          help="candidate source (see `synonyms describe`; default wordnet-cf, wordnet for pwws)")
    p_attack.add_argument("--n", type=int, default=500, help="examples (seeded sample of the test split)")
    p_attack.add_argument("--split", default="test", choices=("test", "dev"),
                          help="the split sampled (dev: to choose settings without looking at test)")
    p_attack.add_argument("--budget", type=float, default=0.2, help="max share of words changed, in (0, 1]")
    p_attack.add_argument("--seed", type=int, default=0)
    p_attack.add_argument("--k", type=int, default=None, help="candidates per word (default: the attack's recipe)")
    p_attack.add_argument("--min-cos", type=float, default=None, help="minimum cosine (default: the attack's recipe)")
    p_attack.add_argument("--batch-size", type=int, default=ROWS,
                          help=f"rows per device batch (default {ROWS}: as fast per row as larger ones on a CPU; raise it on a GPU)")
    p_attack.add_argument("--population", type=int, default=60, help="genetic attack")
    p_attack.add_argument("--generations", type=int, default=20, help="genetic attack")
    p_attack.add_argument("--lm-filter", nargs="?", const=DEFAULT_LM, default=None, metavar="LM",
                          help=f"genetic attack: Jia et al.'s language-model filter with causal LM (default {DEFAULT_LM}): a "
                               f"candidate may lower its {WINDOW}-word window's log-probability by less than {MAX_DROP:g}")
    p_attack.add_argument("--query-budget", type=int, default=None, metavar="N",
                          help="model evaluations per example (the gradient pass counts as one); a search that "
                               "reaches it stops and fails unless it flipped within it (default: no limit)")
    p_attack.add_argument("--ascc-steps", type=int, default=10, help="ascc attack: Adam steps of the relaxed search")
    p_attack.add_argument("--encoder", default=None,
                          help="sentence encoder of the similarity constraint and the validity section (a model "
                               "reference; default all-MiniLM-L6-v2, bundle:minilm-l6)")
    p_attack.add_argument("--constraints", default="default",
                          help="default (the recipe's), none, or a comma list of pos, similarity")
    p_attack.add_argument("--similarity-threshold", type=float, default=None,
                          help="similarity constraint's threshold in [0, 1] (default: the recipe's)")
    p_attack.add_argument("--window", type=int, default=None,
                          help="similarity constraint: words compared around each change (default: the recipe's)")
    p_attack.add_argument("--out", help="report directory (default WORKDIR/attacks/NAME)")
    p_attack.set_defaults(fn=_attack)

    p_sweep = sub.add_parser("sweep", help="gradient attack over budgets and runs: one search per run records every budget")
    p_sweep.add_argument("--workdir", action="append", required=True, help="a run; repeat for several runs")
    p_sweep.add_argument("--budgets", default="0.05,0.1,0.2,0.3", help="comma-separated shares of words")
    p_sweep.add_argument("--synonyms", default="wordnet-cf")
    p_sweep.add_argument("--n", type=int, default=200)
    p_sweep.add_argument("--seed", type=int, default=0)
    p_sweep.add_argument("--k", type=int, default=None)
    p_sweep.add_argument("--min-cos", type=float, default=None)
    p_sweep.add_argument("--constraints", default="default", help="default (A2T's), none, or a comma list of pos, similarity")
    p_sweep.add_argument("--similarity-threshold", type=float, default=None, help="whole-text cosine in [0, 1] (default 0.9)")
    p_sweep.add_argument("--encoder", default=None, help="sentence encoder of the similarity (default bundle:minilm-l6)")
    p_sweep.add_argument("--out", help="output directory (default FIRST_WORKDIR/sweeps/NAME)")
    p_sweep.set_defaults(fn=_sweep)
    return parser


def _enable_compilation_cache() -> None:
    """Keep every compiled XLA program in ``$JAXROBUST_CACHE/xla`` (or JAX's own
    ``JAX_COMPILATION_CACHE_DIR`` when set): a second run of a command compiles nothing."""
    import os

    import jax

    from jaxrobust.assets import cache_dir

    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(cache_dir() / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def main(argv: list[str] | None = None) -> int:
    from_shell = argv is None  # python -m jaxrobust, not a call from Python
    # --config.key=value overrides are collected apart from the declared flags.
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a for a in argv if a.startswith("--config.")]
    args = build_parser().parse_args([a for a in argv if not a.startswith("--config.")])
    args.overrides = overrides
    # The hub client logs each failed connection; the one-line error below already says it.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    import gc
    import os
    import signal

    from jaxrobust import interrupt

    if from_shell:
        # Python's default collects the young generation every 700 allocations, and with it, every
        # time the heap has grown by a quarter, the whole heap: loading jax, transformers and
        # WordNet's millions of objects costs a dozen full walks (1.4-1.8 s of a 19 s attack
        # command on 2 cores). Young collections every 50,000 leave 2 or 3.
        gc.set_threshold(50_000, 10, 10)
    try:
        # Ctrl-C is held off inside JAX and re-raised until the command stops (see interrupt.py).
        with interrupt.handle_sigint():
            _enable_compilation_cache()
            return args.fn(args)
    except JaxRobustError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        if from_shell:
            # Leave at once: CPython ends with SIGINT (status -2, not 130) once a KeyboardInterrupt
            # has passed through code a library ran with PyRun_String, and JAX's threads are better
            # not torn down half-way through a computation.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    finally:
        if from_shell:  # the command is over: a Ctrl-C now must not kill the interpreter's shutdown (status -2)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # The interpreter's shutdown collects garbage over every object still alive -- WordNet's
            # reader alone holds millions -- which the process's exit frees anyway: frozen objects
            # are left out of that walk (0.6-0.9 s of a 20 s attack command on 2 cores).
            gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
