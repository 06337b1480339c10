"""Experiment configs: ``experiments/NAME.py`` files with ``get_config(arg)`` returning a ConfigDict,
plus ``--config.key=value`` overrides (a key that does not exist is an error)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import ml_collections

from jaxrobust.errors import JaxRobustError

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


def resolve_config_path(spec: str) -> tuple[Path, str | None]:
    """``experiments/x.py[:ARG]`` or a bare experiment name -> (file, arg)."""
    path_str, _, arg = spec.partition(":")
    path = Path(path_str)
    if not path.suffix and not path.exists():
        path = EXPERIMENTS_DIR / f"{path_str}.py"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py") if not p.stem.startswith("_")))
        raise JaxRobustError(f"no experiment config {path_str!r}; known experiments: {known}")
    return path, arg or None


def load_config(spec: str, overrides: list[str] = ()) -> ml_collections.ConfigDict:
    path, arg = resolve_config_path(spec)
    module_spec = importlib.util.spec_from_file_location(f"jaxrobust_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg is not None else module.get_config()
    for item in overrides:
        apply_override(config, item)
    return config


def apply_override(config: ml_collections.ConfigDict, item: str) -> None:
    """Apply ``key.sub=value``: the value is parsed as a Python literal and must fit the key's type."""
    key, sep, raw = item.removeprefix("--config.").removeprefix("config.").partition("=")
    if not sep:
        raise JaxRobustError(f"override {item!r} is not of the form --config.key=value")
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
        if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
            raise JaxRobustError(f"config has no key {key!r}")
        node = node[p]
    if leaf not in node:
        raise JaxRobustError(f"config has no key {key!r}; keys: {', '.join(sorted(node.keys()))}")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # a bare string, e.g. --config.task=imdb
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict) and "source" in current and isinstance(value, str):
        # A settings group with a source takes a bare string as its source: --config.synonyms=wordnet.
        node, leaf, current = current, "source", current.source
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(current, tuple):
        # --config.seeds=0 or --config.methods=ft,rift: one value, or comma-separated values.
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, str):
            value = tuple(value.split(","))
        elif isinstance(value, int):
            value = (value,)
    if current is not None and type(value) is not type(current):
        raise JaxRobustError(f"override {key}={raw!r}: expected {type(current).__name__}, got {type(value).__name__}")
    node[leaf] = value


def config_reference(source: Path = Path(__file__).with_name("train.py"), function: str = "default_config") -> str:
    """Every ``--config.KEY`` of the default training config with its default and meaning, read from
    the comments of ``default_config`` (parsed, not imported: ``--help`` needs no jax)."""
    text = source.read_text()
    lines = text.splitlines()
    body = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef) and n.name == function).body

    def row(key: str, value: ast.expr, indent: str) -> str:
        line = lines[value.lineno - 1]
        meaning = line.split("  # ", 1)[1] if "  # " in line else ""
        return f"{indent}--config.{key}={_cli_value(ast.literal_eval(value))}".ljust(44) + f" {meaning}".rstrip()

    out = []
    for node in body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute)):
            continue
        key = node.targets[0].attr
        if isinstance(node.value, ast.Call):  # a settings group ConfigDict(dict(k=v, ...)), its comment above it
            out.append("  " + lines[node.lineno - 2].strip().lstrip("# "))
            out += [row(f"{key}.{kw.arg}", kw.value, "    ") for kw in node.value.args[0].keywords]
        else:
            out.append(row(key, node.value, "  "))
    return "\n".join(out)


def _cli_value(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return (value or "''") if isinstance(value, str) else str(value)
