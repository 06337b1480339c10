"""Whole-configuration checks, run before a command writes anything: a rejected command leaves
nothing behind that would block the corrected one. Each problem gets its own one-line message."""

from __future__ import annotations

import math
import numbers

from jaxrobust.errors import JaxRobustError


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise JaxRobustError(message)


def _positive_int(group, key: str, prefix: str = "") -> None:
    value = group[key]
    _require(_integer(value) and value >= 1, f"--config.{prefix}{key} must be a positive integer, got {value!r}")


def _at_least_zero_int(config, key: str, meaning: str) -> None:
    value = config[key]
    _require(_integer(value) and value >= 0, f"--config.{key} must be 0 ({meaning}) or a positive integer, got {value!r}")


def _in_range(group, prefix: str, key: str, low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> None:
    value = group[key]
    ok = _number(value) and (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    lo, hi = "(" if open_low else "[", ")" if open_high else "]"
    _require(ok, f"--config.{prefix}{key} must be a number in {lo}{low:g}, {high:g}{hi}, got {value!r}")


def check_train_config(config, devices: int) -> None:
    """Every setting a training run reads, checked against the ``devices`` it will run on."""
    from jaxrobust.objectives import get_objective

    objective = get_objective(config.objective)  # unknown objective: its own message
    for key in ("batch_size", "eval_batch_size", "max_length", "epochs", "log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
        _positive_int(config, key)
    _at_least_zero_int(config, "max_steps", "no limit")
    _at_least_zero_int(config, "train_subset", "all examples")
    _at_least_zero_int(config, "eval_subset", "all examples")
    _at_least_zero_int(config, "eval_every_steps", "every epoch")
    from jaxrobust.models.config import DTYPES

    for key in ("dtype", "param_dtype"):
        _require(config[key] in DTYPES, f"--config.{key} must be one of {', '.join(DTYPES)}, got {config[key]!r}")
    _require(config.select_on in ("accuracy", "loss"), f"--config.select_on must be accuracy or loss, got {config.select_on!r}")
    for key in ("batch_size", "eval_batch_size"):
        _require(config[key] % devices == 0, f"--config.{key}={config[key]} is not a multiple of the {devices} devices")
    buckets = config.buckets
    _require(
        isinstance(buckets, (tuple, list)) and len(buckets) > 0 and all(_integer(b) and b >= 1 for b in buckets),
        f"--config.buckets must be positive token lengths, e.g. (32, 64), got {buckets!r}",
    )
    _require(max(buckets) >= config.max_length, f"largest bucket {max(buckets)} is below max_length {config.max_length}")
    _in_range(config, "", "lr", 0.0, math.inf, open_low=True, open_high=True)
    _in_range(config, "", "warmup_ratio", 0.0, 1.0, open_high=True)
    _in_range(config, "", "weight_decay", 0.0, math.inf, open_high=True)
    _in_range(config, "", "grad_clip", 0.0, math.inf, open_low=True, open_high=True)
    if objective.substitutions:
        _check_synonyms(config.synonyms)
    if config.objective in ("ascc", "rift"):
        _positive_int(config.ascc, "steps", "ascc.")
        _in_range(config.ascc, "ascc.", "lr", 0.0, math.inf, open_low=True, open_high=True)
        _in_range(config.ascc, "ascc.", "entropy_weight", 0.0, math.inf, open_high=True)
        _in_range(config.ascc, "ascc.", "beta", 0.0, math.inf, open_high=True)
    if config.objective in ("freelb", "infobert"):
        name = config.objective
        f = config[name]
        _positive_int(f, "steps", f"{name}.")
        _in_range(f, f"{name}.", "adv_lr", 0.0, math.inf, open_low=True, open_high=True)
        _in_range(f, f"{name}.", "init_mag", 0.0, math.inf, open_high=True)
        _in_range(f, f"{name}.", "max_norm", 0.0, math.inf, open_high=True)
    if config.objective == "infobert":
        b = config.infobert
        for key in ("beta", "alpha"):
            _in_range(b, "infobert.", key, 0.0, math.inf, open_high=True)
        _in_range(b, "infobert.", "cl", 0.0, 1.0)
        _in_range(b, "infobert.", "ch", b.cl, 1.0)
        _positive_int(b, "critic_hidden", "infobert.")
    if config.objective == "adv":
        _in_range(config.adv, "adv.", "share", 0.0, 1.0, open_low=True)
        _in_range(config.adv, "adv.", "budget", 0.0, 1.0, open_low=True)
    if config.objective == "rift":
        r = config.rift
        for key in ("w_clean", "w_kl", "w_mi"):
            _in_range(r, "rift.", key, 0.0, math.inf, open_high=True)
        _in_range(r, "rift.", "tau", 0.0, math.inf, open_low=True, open_high=True)
        for key in ("head_hidden", "head_dim"):
            _positive_int(r, key, "rift.")


def check_classes(config, num_labels: int) -> None:
    """The checks that need the task's number of classes."""
    from jaxrobust.objectives import get_objective

    if get_objective(config.objective).balanced:
        _require(
            config.batch_size % num_labels == 0,
            f"objective {config.objective} needs --config.batch_size divisible by the {num_labels} classes, got {config.batch_size}",
        )


def _check_synonyms(s) -> None:
    from jaxrobust.attacks.synonyms import check_source

    _positive_int(s, "k", "synonyms.")
    _in_range(s, "synonyms.", "min_cos", -1.0, 1.0)
    check_source(s.source.strip(), s.k, s.min_cos)


def check_study_config(config) -> None:
    """A study's methods, seeds, attacks and sample sizes, before any cell is trained."""
    from jaxrobust.attacks.run import ATTACKS

    unknown = [m for m in config.methods if m not in config.experiments]
    _require(not unknown, f"unknown method {', '.join(map(repr, unknown))} in --config.methods; known: {', '.join(config.experiments)}")
    _require(len(config.methods) > 0, "--config.methods is empty; known methods: " + ", ".join(config.experiments))
    _require(len(config.seeds) > 0 and all(_integer(s) for s in config.seeds), f"--config.seeds must be integers, got {config.seeds!r}")
    bad = [a for a in config.attacks if a not in ATTACKS]
    _require(not bad, f"unknown attack {', '.join(map(repr, bad))} in --config.attacks; known: {', '.join(ATTACKS)}")
    _positive_int(config, "n_examples")
    for key in ("n", "population", "generations"):
        _positive_int(config.genetic, key, "genetic.")
    _in_range(config, "", "budget", 0.0, 1.0, open_low=True)
    _check_synonyms(config.synonyms)  # an unknown source or a missing file stops before any training
