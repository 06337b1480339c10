"""``python -m jaxrobust COMMAND``: flags only; the work lives in the modules."""

from __future__ import annotations

import argparse
import sys

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
    from jaxrobust.train import train_and_evaluate

    config = load_config(args.config, args.overrides)
    results = train_and_evaluate(config, args.workdir, overwrite=args.overwrite)
    _print_table(results, ("task", "model", "dev_accuracy", "test_accuracy", "test_macro_f1", "train_seconds", "examples_per_second"))
    return 0


def _evaluate(args) -> int:
    from jaxrobust.train import evaluate, load_run

    config, prepared = load_run(args.workdir)
    metrics = evaluate(
        prepared.classifier.model, prepared.splits[args.split], config,
        prepared.classifier.tokenizer.pad_token_id, prepared.task.num_labels,
    )
    _print_table({"split": args.split, **metrics}, ("split", "accuracy", "macro_f1", "loss", "n"))
    return 0


def _export(args) -> int:
    from jaxrobust.models import export_classifier
    from jaxrobust.train import load_run

    _, prepared = load_run(args.workdir)
    print(export_classifier(prepared.classifier, args.out, prepared.task.label_names))
    return 0


def _data_describe(args) -> int:
    from jaxrobust.data import get_task
    from jaxrobust.data.describe import describe_task

    print(describe_task(get_task(args.task, args.text_field, args.label_field, args.text_b_field)))
    return 0


def _print_table(row: dict, keys: tuple[str, ...]) -> None:
    width = max(len(k) for k in keys)
    for k in keys:
        v = row[k]
        print(f"{k.ljust(width)}  {v:.4f}" if isinstance(v, float) else f"{k.ljust(width)}  {v}")


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

    p_train = sub.add_parser("train", help="fine-tune a model as an experiment config says")
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
    p_export.add_argument("--out", required=True)
    p_export.set_defaults(fn=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    # --config.key=value overrides are collected apart from the declared flags.
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = [a for a in argv if a.startswith("--config.")]
    args = build_parser().parse_args([a for a in argv if not a.startswith("--config.")])
    args.overrides = overrides
    try:
        return args.fn(args)
    except JaxRobustError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
