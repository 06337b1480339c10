"""Load a classifier from any model reference; export it back to Hugging Face format."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrobust import assets
from jaxrobust.errors import JaxRobustError
from jaxrobust.models import gguf_import
from jaxrobust.models.config import EncoderConfig, with_dtypes
from jaxrobust.models.decoder_config import DecoderConfig
from jaxrobust.models.registry import FAMILIES, family
from jaxrobust.models.weight_rules import load_rule_weights, rule_state_dict
from jaxrobust.models.weights import SafetensorFiles
from jaxrobust.outputs import is_run_dir, write_export


@dataclasses.dataclass
class LoadedClassifier:
    model: nnx.Module  # an encoder's SequenceClassifier or a DecoderClassifier (models.registry)
    tokenizer: Any  # a transformers fast tokenizer
    config: EncoderConfig | DecoderConfig
    hf_config: dict[str, Any]  # the config.json it came from (kept for export)
    path: Path
    fresh_params: list[str]  # head parameters not in the checkpoint, freshly initialised


def _lone_gguf(path: Path) -> Path | None:
    """The GGUF file of a directory without a ``config.json`` (the file is then the model), else None."""
    return None if (path / "config.json").is_file() else gguf_import.gguf_file(path)


def load_hf_config(path: Path) -> dict[str, Any]:
    """The ``config.json`` of a model directory as a dict (its ``model_type`` is checked by
    :meth:`EncoderConfig.from_hf`); of a directory holding only a GGUF file, the config it describes."""
    config_file = path / "config.json"
    if (gguf := _lone_gguf(path)) is not None:
        return gguf_import.read_config(gguf)
    if not config_file.is_file():
        raise JaxRobustError(f"no config.json in {path}: not a Hugging Face model directory")
    try:
        hf_config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise JaxRobustError(f"{config_file} is not valid JSON: {e}") from e
    if not isinstance(hf_config, dict):
        raise JaxRobustError(f"{config_file} is not a JSON object")
    return hf_config


def weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        other = [p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".h5", ".msgpack")]
        hint = f" (found {', '.join(other)}; only safetensors are read)" if other else ""
        raise JaxRobustError(f"no *.safetensors weights in {path}{hint}")
    return files


def load_tokenizer(path: Path):
    """The fast tokenizer of a model directory: the class its ``tokenizer_config.json`` names (else
    its family's), as ``AutoTokenizer`` picks it -- called directly, because ``AutoTokenizer``
    imports PyTorch, which costs seconds of every command's start. A class this transformers does
    not export by name goes through ``AutoTokenizer``."""
    import transformers

    def read(name: str) -> dict:
        try:
            return json.loads((path / name).read_text())
        except (OSError, ValueError):
            return {}

    if (gguf := _lone_gguf(path)) is not None:
        return gguf_import.read_tokenizer(gguf)
    model_type = read("config.json").get("model_type")
    name = read("tokenizer_config.json").get("tokenizer_class") or (FAMILIES[model_type].tokenizer_class if model_type in FAMILIES else "")
    # transformers 5 has one class per tokenizer (XFast is an alias); 4.x has both, the fast one wanted.
    cls = (getattr(transformers, name.removesuffix("Fast") + "Fast", None) or getattr(transformers, name, None)) if name else None
    try:
        if cls is None:
            return transformers.AutoTokenizer.from_pretrained(str(path), use_fast=True)
        return cls.from_pretrained(str(path))
    except (OSError, ValueError, TypeError) as e:
        raise JaxRobustError(f"no usable tokenizer in {path}: {str(e).splitlines()[0]}") from e


def load_classifier(
    ref: str, num_labels: int | None = None, *, seed: int = 0, tokenizer: bool = True, weights: bool = True, random_head: bool = True,
    lm_head: bool = False, dtype: str = "float32", param_dtype: str = "float32",
) -> LoadedClassifier:
    """Model + tokenizer + config from a directory, ``bundle:ID`` or hub id.

    The encoder must be complete in the checkpoint; a missing head is initialised from ``seed``
    (``random_head``) or, for a caller that never reads the head (the sentence encoder), zeros.
    ``weights=False`` reads no weights: every parameter is left abstract, for the caller to restore
    from its own checkpoint (a training run's). A training run's directory gives its best-on-dev
    classifier. The model is returned in eval mode (dropout off); call ``model.train()`` to train it.
    A decoder's untied causal-LM head is loaded only with ``lm_head`` (for its next-token logits).
    The model computes in ``dtype`` and holds its parameters in ``param_dtype`` (float32 by default:
    a bfloat16 checkpoint is cast up unless ``param_dtype="bfloat16"`` keeps it as it is).

    The model is built abstractly (``nnx.eval_shape``) and filled with the checkpoint's tensors, so
    nothing is initialised at random that is then overwritten -- except a random head, whose
    values follow the whole model's initialisation from ``seed`` (so it is built for real).
    """
    path = assets.resolve(ref)
    if is_run_dir(path):
        return _run_classifier(path, num_labels)
    hf_config = load_hf_config(path)
    fam = family(hf_config.get("model_type"), str(path))
    cfg = with_dtypes(fam.config.from_hf(hf_config, num_labels), dtype, param_dtype)
    heads = {"with_lm_head": lm_head} if fam.is_decoder else {}
    build = lambda: fam.module(cfg, rngs=nnx.Rngs(params=seed, dropout=seed), **heads)
    model, fresh = nnx.eval_shape(build), []
    if weights:
        gguf = _lone_gguf(path)
        tensors = SafetensorFiles(weight_files(path)) if gguf is None else gguf_import.read_tensors(gguf, hf_config)
        # What the checkpoint lacks, from its shapes alone; then the tensors go, one at a time, into
        # the abstract model, or into a real one if a random head is wanted.
        fresh = load_rule_weights(model, fam, cfg, tensors, source=str(path), check_only=True)
        if fresh and random_head:
            model = build()
        load_rule_weights(model, fam, cfg, tensors, source=str(path))
        fill_abstract(model, seed)
    model.eval()
    return LoadedClassifier(model, load_tokenizer(path) if tokenizer else None, cfg, hf_config, path, fresh)


def parameter_count(model: nnx.Module) -> int:
    """The number of trainable values of ``model`` (its ``nnx.Param`` leaves; abstract ones count too)."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def fill_abstract(model: nnx.Module, seed: int, params: bool = True) -> None:
    """Give the variables of ``model`` still abstract (from ``nnx.eval_shape``) values: zeros for
    parameters (only if ``params``), and for dropout's RNG streams a key of ``seed`` (training
    reseeds them every step, :mod:`jaxrobust.checkpoint`)."""
    key = jax.random.key(seed)
    for _, var in nnx.iter_graph(model):
        if isinstance(var, nnx.Variable) and isinstance(var.get_value(), jax.ShapeDtypeStruct):
            if isinstance(var, nnx.RngKey):
                var.set_value(key)
            elif isinstance(var, nnx.RngCount):
                var.set_value(jnp.zeros((), var.get_value().dtype))
            elif params:
                var.set_value(jax.device_put(np.zeros(var.get_value().shape, var.get_value().dtype)))


def _run_classifier(run: Path, num_labels: int | None) -> LoadedClassifier:
    from jaxrobust.train import load_run  # training builds on this module

    _, prepared = load_run(run)
    if num_labels is not None and num_labels != prepared.task.num_labels:
        raise JaxRobustError(f"{run} is a run of {prepared.task.num_labels} classes, not {num_labels}")
    return prepared.classifier


def export_classifier(
    loaded: LoadedClassifier,
    out_dir: str | os.PathLike,
    label_names: Sequence[str] | None = None,
    *,
    force: bool = False,
    **about,
) -> Path:
    """Write the classifier as a Hugging Face directory (safetensors + config + tokenizer).

    ``transformers.AutoModelForSequenceClassification.from_pretrained(out_dir)`` then computes the
    same logits. The directory appears complete or not at all (written aside, then renamed); a
    folder that is not empty is replaced only if it is a previous export and ``force`` is set
    (:mod:`jaxrobust.outputs`). ``about`` is recorded in its ``jaxrobust-export.json``.
    """
    from safetensors.numpy import save_file

    cfg = loaded.config
    names = list(label_names) if label_names else [f"LABEL_{i}" for i in range(cfg.num_labels)]
    if len(names) != cfg.num_labels:
        raise JaxRobustError(f"{len(names)} label names for a classifier with {cfg.num_labels} labels")
    # The source's config.json with this classifier's head and labels (id2label sets num_labels)
    # and the dtype of the tensors written.
    hf_config = {k: v for k, v in loaded.hf_config.items() if k not in ("num_labels", "torch_dtype")}
    fam = family(cfg.model_type)
    hf_config.update(
        architectures=[fam.hf_class],
        id2label={str(i): n for i, n in enumerate(names)},
        label2id={n: i for i, n in enumerate(names)},
        dtype=cfg.param_dtype,  # what the tensors written hold
    )
    tokenizer = loaded.tokenizer
    if fam.is_decoder and tokenizer is not None and tokenizer.pad_token is None:
        # transformers' decoder classifiers read the last token that is not the pad id, and neither
        # they nor the tokenizer take a batch without one: write the pad this project used (eos).
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.pad_token = tokenizer.eos_token
        hf_config["pad_token_id"] = tokenizer.pad_token_id

    def write(folder: Path) -> None:
        save_file(rule_state_dict(loaded.model, fam, cfg), str(folder / "model.safetensors"), metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder))

    return write_export(out_dir, write, force=force, **about)
