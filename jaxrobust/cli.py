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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
