"""Fine-tuning: ``train_and_evaluate(config, workdir)``.

One generic jitted train step over a loss ``(model, batch, rng, config) -> (loss, metrics)`` (see
``jaxrobust.objectives``), data-parallel over a ``('data',)`` mesh of all devices: parameters and
optimizer state replicated, batches sharded along their first axis. Dev is evaluated every epoch
(or every ``eval_every_steps``); the best-on-dev model (``select_on``: accuracy or loss) is the one
evaluated on test.

A run killed at any point and started again with the same command resumes from its last checkpoint
and ends with bitwise-identical parameters and metrics: the data order depends only on
``(seed, epoch)`` and dropout only on ``(seed, step)``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from scipy.special import log_softmax
from tqdm import tqdm

from jaxrobust.attacks.synonyms import load_synonyms
from jaxrobust.checkpoint import Checkpoints
from jaxrobust.data.conventions import conventions
from jaxrobust.data.encoding import Encoded, encode, make_batches
from jaxrobust.data.tasks import SPLIT_SEED, Example, Task, get_task
from jaxrobust.errors import HubUnreachable, JaxRobustError
from jaxrobust.io import MetricsLog, write_json_atomic
from jaxrobust.models import LoadedClassifier, load_classifier, parameter_count
from jaxrobust.models.loading import fill_abstract
from jaxrobust.objectives import get_objective
from jaxrobust.objectives.ft import classifier_logits
from jaxrobust.objectives.infonce import balanced_batches
from jaxrobust.objectives.substitutions import TokenSubstitutions, token_substitutions
from jaxrobust.outputs import claim_run_dir, clear_run_dir, is_run_dir
from jaxrobust.validation import check_classes, check_train_config

# Batch arrays the train step reads (the host-side "index" stays behind); slots: word-substituting objectives.
# teacher_pooled: an objective's fixed inputs (Objective.fixed_inputs).
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "labels", "weights", "slot_ids", "slot_mask", "content", "teacher_pooled")


def default_config() -> ml_collections.ConfigDict:
    """Every key a fine-tuning run reads; experiments start from this and change what they need."""
    c = ml_collections.ConfigDict()
    c.task = "rotten_tomatoes"  # a task name (`data describe`), or your own csv:PATH / jsonl:PATH
    c.text_field = "text"  # csv:/jsonl: tasks: the column holding the text
    c.label_field = "label"  # csv:/jsonl: tasks: the column holding the label
    c.text_b_field = ""  # csv:/jsonl: tasks: the second text of a pair task ("" for none)
    c.label_names = ()  # csv:/jsonl: tasks: the labels in class order, e.g. neg,pos (empty: sorted, integers numerically)
    c.dev_file = ""  # csv:/jsonl: tasks: a file of dev examples ("" cuts dev from the task's file)
    c.test_file = ""  # csv:/jsonl: tasks: a file of test examples ("" cuts test from the task's file)
    c.model = "bundle:minilm-l6"  # the pretrained model: a Hugging Face directory, bundle:ID, hub id or a run
    c.dtype = "float32"  # what the model computes in: float32 or bfloat16 (softmax and norms stay float32)
    c.param_dtype = "float32"  # what its parameters are held in: float32 (a bfloat16 checkpoint is cast up) or bfloat16
    c.objective = "ft"  # the training loss: ft, adv, freelb, ascc, rift or infobert
    c.seed = 0  # head initialisation, data order and dropout
    c.max_length = 64  # tokens per text; longer texts are cut
    c.buckets = (32, 64)  # token lengths a batch is padded to; the largest must be >= max_length
    c.batch_size = 32  # training examples per step (a multiple of the devices)
    c.eval_batch_size = 64  # examples per evaluation batch (a multiple of the devices)
    c.epochs = 1  # passes over the training split
    c.max_steps = 0  # > 0: stop after this many steps (shortened runs)
    c.train_subset = 0  # > 0: use this many training examples (a fixed, seed-independent sample)
    c.eval_subset = 0  # > 0: evaluate dev and test on this many examples
    c.lr = 5e-5  # peak AdamW learning rate (linear warm-up, then linear decay to 0)
    c.warmup_ratio = 0.1  # share of the steps spent warming up, in [0, 1)
    c.weight_decay = 0.01  # AdamW weight decay (not on biases and LayerNorm scales)
    c.grad_clip = 1.0  # global gradient-norm clip
    c.eval_every_steps = 0  # 0: at the end of every epoch
    c.select_on = "accuracy"  # the model kept: the highest dev accuracy, or the lowest dev loss (loss: Hugging Face Trainer's default)
    c.checkpoint_every_steps = 100  # training checkpoints (also at every epoch end and the last step)
    c.keep_checkpoints = 2  # training checkpoints kept: a corrupt newest one falls back to the one before
    c.log_every_steps = 10  # steps between records in metrics.jsonl
    c.distributed = False  # multi-host: call jax.distributed.initialize() first
    c.offline_alternative = ""  # an experiment to name when the hub cannot be reached (hub-sized experiments)
    # FreeLB (objective "freelb"), Zhu et al.'s GLUE defaults.
    c.freelb = ml_collections.ConfigDict(dict(
        steps=3,  # ascent steps on the word embeddings
        adv_lr=0.1,  # ascent step size
        init_mag=0.6,  # magnitude of the initial random perturbation
        max_norm=0.0,  # L2 radius of the perturbation (0: unbounded)
    ))
    # InfoBERT (objective "infobert"): FreeLB plus its two regularisers; the authors' ANLI settings.
    c.infobert = ml_collections.ConfigDict(dict(
        steps=3,  # FreeLB ascent steps on the word embeddings
        adv_lr=4e-2,  # ascent step size
        init_mag=8e-2,  # magnitude of the initial random perturbation
        max_norm=0.0,  # L2 radius of the perturbation (0: unbounded)
        beta=5e-3,  # weight of the information bottleneck on the token features
        alpha=5e-3,  # weight of the anchored-word InfoNCE (maximised)
        cl=0.5,  # anchored words: gradient-norm rank from this quantile of the text's tokens ...
        ch=0.9,  # ... up to this one
        critic_hidden=300,  # hidden width of the InfoNCE critic
    ))
    # A2T-style augmentation (objective "adv").
    c.adv = ml_collections.ConfigDict(dict(
        share=0.5,  # share of each batch that is attacked, in (0, 1]
        budget=0.1,  # share of a text's tokens the attack may substitute, in (0, 1]
    ))
    # Synonyms of the objectives that substitute words (adv, ascc, rift); --config.synonyms=SOURCE sets the source.
    c.synonyms = ml_collections.ConfigDict(dict(
        source="wordnet-cf",  # wordnet-cf, glove-cf, wordnet, counterfitted:PATH or embedding:MODEL (see `synonyms describe`)
        k=8,  # single-token candidates per word at most
        min_cos=0.5,  # minimum cosine of a candidate (sources with scores), in [-1, 1]
    ))
    # ASCC inner maximisation (objectives ascc and rift).
    c.ascc = ml_collections.ConfigDict(dict(
        steps=10,  # Adam steps on the convex-combination weight logits
        lr=1.0,  # their learning rate
        entropy_weight=1.0,  # entropy penalty pushing each word's weights towards one real word
        beta=4.0,  # weight of the KL term of the ascc objective
    ))
    # RIFT (METHODS.md section 1; IMDB settings).
    c.rift = ml_collections.ConfigDict(dict(
        w_clean=1.0,  # weight of the clean cross-entropy
        w_kl=10.0,  # weight of KL(p(x) || p(adversarial x))
        w_mi=0.1,  # weight of the class-conditional InfoNCE to the frozen teacher
        tau=0.2,  # InfoNCE temperature
        head_hidden=512,  # hidden width of the per-class projection heads
        head_dim=256,  # output width of the projection heads
    ))
    return c


# --- data -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
    task: Task
    classifier: LoadedClassifier
    examples: dict[str, list[Example]]  # train, dev, test (the subsets the config asks for)
    max_length: int
    skipped: int
    duplicates: int  # repeated texts dropped before splitting
    split_digest: str  # the identity of the task's split (Splits.digest), part of a run's key

    @functools.cached_property
    def splits(self) -> dict[str, list[Encoded]]:
        """Each split encoded for the model, on first use (an attack reads only the classifier)."""
        return {name: encode(self.classifier.tokenizer, ex, self.max_length) for name, ex in self.examples.items()}


def task_of(config) -> Task:
    """The task of ``config``, with the label names and dev/test files of a csv:/jsonl: task."""
    return get_task(
        config.task, config.text_field, config.label_field, config.text_b_field or None,
        label_names=tuple(map(str, config.label_names)) or None, dev=config.dev_file or None, test=config.test_file or None,
    )


def resolve_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of ``config`` with its local files (``csv:``/``jsonl:`` tasks, dev and test files, a
    model directory) made absolute, so that the run works from any folder."""
    config = copy.deepcopy(config)
    kind, sep, path = config.task.partition(":")
    if sep and kind in ("csv", "jsonl"):
        config.task = f"{kind}:{Path(path).expanduser().resolve()}"
    for key in ("dev_file", "test_file"):
        if config[key]:
            config[key] = str(Path(config[key]).expanduser().resolve())
    model = Path(config.model).expanduser()
    if not config.model.startswith("bundle:") and model.is_dir():
        config.model = str(model.resolve())
    return config


def take_subset(items: list, n: int) -> list:
    """``n`` items (all if ``n`` is 0 or too large) drawn by the fixed split seed, in their order."""
    if not 0 < n < len(items):
        return items
    keep = np.sort(np.random.default_rng(SPLIT_SEED).permutation(len(items))[:n])
    return [items[i] for i in keep]


def prepare(config: ml_collections.ConfigDict, pretrained: bool = True) -> Prepared:
    """Task splits encoded for the model named in ``config``, and the model itself: with its
    pretrained weights, or (``pretrained=False``) abstract, for a checkpoint to fill."""
    try:
        task = task_of(config)
        splits = task.load()
        classifier = load_classifier(config.model, task.num_labels, seed=config.seed, weights=pretrained,
                                     dtype=config.dtype, param_dtype=config.param_dtype)
    except HubUnreachable as e:
        if not config.offline_alternative:
            raise
        alt = config.offline_alternative
        raise HubUnreachable(f"this experiment needs the Hugging Face hub; without it run `make experiment EXP={alt}` ({e})") from e
    raw = {
        "train": take_subset(splits.train, config.train_subset),
        "dev": take_subset(splits.dev, config.eval_subset),
        "test": take_subset(splits.test, config.eval_subset),
    }
    for name, examples in raw.items():
        if not examples:
            raise JaxRobustError(f"task {task.name} has an empty {name} split")
    return Prepared(task, classifier, raw, config.max_length, splits.skipped, splits.duplicates, splits.digest())


def split_digest(config) -> str:
    """The split identity of ``config``'s task (``Splits.digest``; loads the task, a fraction of a second for the bundles)."""
    return task_of(config).load().digest()


def saved_split(workdir: Path) -> str | None:
    """The split digest a run in ``workdir`` was trained on (None: unknown, a run from before it was kept)."""
    try:
        return json.loads((Path(workdir) / "split.json").read_text())["digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def epoch_batches(prepared: Prepared, config, epoch: int, substitutions: TokenSubstitutions | None = None) -> list[dict]:
    """The shuffled training batches of ``epoch``: class-balanced where the objective needs it,
    with the synonym slots of every token (``slot_ids, slot_mask``) and each row's count of
    non-special tokens (``content``) where it substitutes words."""
    seed = int(np.random.SeedSequence([config.seed, epoch]).generate_state(1)[0])
    pad = conventions(prepared.classifier.tokenizer).pad_id
    train = prepared.splits["train"]
    if get_objective(config.objective).balanced:
        batches = balanced_batches(train, config.batch_size, prepared.task.num_labels, config.buckets, pad, seed)
    else:
        batches = make_batches(train, config.batch_size, config.buckets, pad, shuffle_seed=seed)
    if substitutions is not None:
        for b in batches:
            b["slot_ids"], b["slot_mask"] = substitutions.of(b["input_ids"])
            b["content"] = substitutions.content(b["input_ids"], b["attention_mask"])
    return batches


def fixed_inputs(objective, trained, prepared: Prepared, config, place: Callable = lambda b: b) -> dict[str, np.ndarray]:
    """``{key: [N, ...]}``: the objective's inputs that depend only on each training example's clean
    tokens and on weights training never changes (``Objective.fixed_inputs``), computed once for
    the ``N`` examples of the training split, each at its own length bucket; ``{}`` for the others."""
    if objective.fixed_inputs is None:
        return {}
    compute = nnx.jit(objective.fixed_inputs)
    train, pad = prepared.splits["train"], conventions(prepared.classifier.tokenizer).pad_id
    rows: dict[str, np.ndarray] = {}
    for batch in make_batches(train, config.eval_batch_size, config.buckets, pad):
        real = batch["index"][batch["index"] >= 0]
        for key, value in jax.device_get(compute(trained, place(batch))).items():
            rows.setdefault(key, np.zeros((len(train), *value.shape[1:]), value.dtype))[real] = value[: len(real)]
    return rows


def with_fixed_inputs(batch: dict, fixed: dict[str, np.ndarray]) -> dict:
    """``batch`` with its rows of the :func:`fixed_inputs` (padding rows get the first example's)."""
    return {**batch, **{key: rows[np.maximum(batch["index"], 0)] for key, rows in fixed.items()}}


def training_substitutions(prepared: Prepared, config) -> TokenSubstitutions | None:
    """The token-level synonym table of an objective that substitutes words (else None)."""
    if not get_objective(config.objective).substitutions:
        return None
    s = config.synonyms
    table = load_synonyms(s.source, k=s.k, min_cos=s.min_cos)
    return token_substitutions(prepared.classifier.tokenizer, table, s.k)


# --- optimisation -----------------------------------------------------------------------------


def make_optimizer(config, total_steps: int) -> optax.GradientTransformation:
    """AdamW with linear warm-up and linear decay to 0, global-norm clipping, and no weight decay
    on biases and LayerNorm scales (parameters with fewer than 2 dimensions)."""
    warmup = int(config.warmup_ratio * total_steps)
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, config.lr, max(warmup, 1)), optax.linear_schedule(config.lr, 0.0, max(total_steps - warmup, 1))],
        [warmup],
    )
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip),
        optax.adamw(schedule, weight_decay=config.weight_decay, mask=decay_mask),
    )


def make_train_step(loss_fn: Callable, config) -> Callable:
    """The jitted step ``(model, optimizer, batch, rng) -> metrics``; ``step.traces`` counts
    compilations (one per batch shape is expected)."""

    def step(model, optimizer, batch, rng):
        step.traces += 1  # runs at trace time only
        nnx.reseed(model, dropout=rng)

        def loss_of(model):
            return loss_fn(model, batch, rng, config)

        (loss, metrics), grads = nnx.value_and_grad(loss_of, has_aux=True)(model)
        optimizer.update(model, grads)
        return {
            **metrics,
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(nnx.state(model, nnx.Param)),
        }

    step.traces = 0
    jitted = nnx.jit(step)
    jitted.traces_of = lambda: step.traces
    return jitted


_eval_logits = nnx.jit(classifier_logits)


def macro_f1(labels: np.ndarray, preds: np.ndarray, num_labels: int) -> float:
    f1s = []
    for c in range(num_labels):
        tp = np.sum((preds == c) & (labels == c))
        denom = np.sum(preds == c) + np.sum(labels == c)
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s))


def evaluate(model, encoded: list[Encoded], config, pad_id: int, num_labels: int, place: Callable = lambda b: b) -> dict:
    """Accuracy, macro-F1 and mean cross-entropy of ``model`` (in eval mode) on ``encoded``."""
    model.eval()
    labels, preds, losses = [], [], []
    for batch in make_batches(encoded, config.eval_batch_size, config.buckets, pad_id):
        logits = np.asarray(_eval_logits(model, place(batch)), np.float64)
        real = batch["weights"] > 0
        logp = log_softmax(logits, axis=-1)
        losses.append(-logp[np.arange(len(logits)), batch["labels"]][real])
        labels.append(batch["labels"][real])
        preds.append(logits.argmax(-1)[real])
    labels, preds = np.concatenate(labels), np.concatenate(preds)
    return {
        "accuracy": float(np.mean(labels == preds)),
        "macro_f1": macro_f1(labels, preds, num_labels),
        "loss": float(np.mean(np.concatenate(losses))),
        "n": int(len(labels)),
    }


# --- mesh -------------------------------------------------------------------------------------


def make_mesh() -> jax.sharding.Mesh:
    # Auto axes: XLA propagates the batch sharding through the model; no per-op annotations needed.
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def replicate(mesh, *objects) -> None:
    """Place every array of ``objects`` (nnx modules/optimizers) on all devices, in place."""
    sharding = NamedSharding(mesh, PartitionSpec())
    for obj in objects:
        nnx.update(obj, jax.device_put(nnx.state(obj), sharding))


def batch_placer(mesh) -> Callable[[dict], dict]:
    """Host batch -> global arrays sharded along the batch axis (works on one or many hosts)."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))

    def place(batch: dict) -> dict:
        return {
            k: jax.make_array_from_callback(batch[k].shape, sharding, lambda idx, a=batch[k]: a[idx])
            for k in MODEL_INPUTS
            if k in batch
        }

    return place


# --- the run ----------------------------------------------------------------------------------


def with_defaults(saved: dict) -> dict:
    """A saved run config completed with today's defaults: a run saved before a setting existed ran
    with that setting's default."""
    config = default_config()
    config.update(saved)
    return json.loads(config.to_json())


def holds_config(workdir: Path, config) -> bool:
    """Whether ``workdir`` holds a run of exactly ``config``."""
    saved = Path(workdir) / "config.json"
    if not saved.is_file():
        return False
    return with_defaults(json.loads(saved.read_text())) == json.loads(resolve_paths(config).to_json())


def _must_clear(workdir: Path, config, overwrite: bool) -> bool:
    """Whether the run files in ``workdir`` must be removed before this run starts; refuses to mix
    runs (a different config is an error unless ``overwrite``) and never touches a folder that is
    not a jaxrobust run. Writes nothing."""
    if not (workdir / "config.json").exists():
        return False
    if not is_run_dir(workdir):
        raise JaxRobustError(f"{workdir} holds a config.json that is not a jaxrobust run; choose another --workdir")
    if overwrite:
        return True
    if holds_config(workdir, config):
        return False  # the same run: resumed
    if not (workdir / "results.json").exists() and not any(p.name.isdigit() for p in (workdir / "checkpoints").glob("*")):
        return True  # a run that never saved a step (e.g. stopped at step 1) has nothing to lose
    raise JaxRobustError(f"{workdir} holds a run with a different config; use --overwrite to replace it")


def is_stale(workdir: Path, config) -> bool:
    """Whether ``workdir`` holds a run of exactly ``config`` trained on a split that has since changed:
    what a study or benchmark may replace in its own run folder (``overwrite=is_stale(...)``)."""
    return holds_config(workdir, config) and saved_split(workdir) != split_digest(config)


def _check_same_split(workdir: Path, digest: str) -> None:
    """A run is resumed only on the split it was trained on: the same config over changed data (an
    edited CSV, a new split rule) is another experiment."""
    saved = saved_split(workdir)
    if saved is None:
        raise JaxRobustError(f"the run in {workdir} does not record its data split (it predates split.json); use --overwrite to train it again")
    if saved != digest:
        raise JaxRobustError(f"the data of the run in {workdir} changed since it was trained (split {saved}, now {digest}); use --overwrite to train it again")


def _resume(checkpoints: Checkpoints, objects: dict, progress: dict) -> tuple[int, dict]:
    """Restore the newest intact training checkpoint into ``objects``: ``(step, progress)``, or
    ``(0, progress)`` for a new run. A damaged checkpoint is removed and the one before it used."""
    for step in sorted(checkpoints.all_steps(), reverse=True):
        try:
            return step, checkpoints.restore(step, objects)
        except JaxRobustError as e:
            print(f"warning: {e}; removing it and trying the checkpoint before", file=sys.stderr)
            checkpoints.delete(step)
    return 0, progress


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    overwrite: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """Train, select on dev, evaluate on test; write ``results.json`` in ``workdir`` and return it.

    The whole configuration is checked and the task and model are loaded before anything is
    written, so a rejected command leaves no trace. ``on_step(step)`` is called after every
    completed step (tests use it to interrupt a run).
    """
    if config.distributed:
        jax.distributed.initialize()
    workdir = Path(workdir)
    check_train_config(config, jax.device_count())
    config = resolve_paths(config)
    clear = _must_clear(workdir, config, overwrite)
    prepared = prepare(config)  # a missing model or task, or bad data, leaves no run behind
    check_classes(config, prepared.task.num_labels)
    if not clear and (workdir / "config.json").exists():
        _check_same_split(workdir, prepared.split_digest)
    if clear:
        clear_run_dir(workdir)
    claim_run_dir(workdir)
    sizes = {name: len(examples) for name, examples in prepared.splits.items()}
    # Before config.json: a run that has a config always has its split.
    write_json_atomic(workdir / "split.json", {"digest": prepared.split_digest, **sizes, "duplicates_dropped": prepared.duplicates})
    write_json_atomic(workdir / "config.json", json.loads(config.to_json()))
    objective = get_objective(config.objective)
    model = prepared.classifier.model  # what is evaluated, selected and exported
    pad_id = conventions(prepared.classifier.tokenizer).pad_id
    num_labels = prepared.task.num_labels
    # What the optimizer updates: the model, or a module holding it (RIFT: heads and a frozen teacher).
    trained = objective.wrap(model, num_labels, config) if objective.wrap else model

    substitutions = training_substitutions(prepared, config)
    batches, batches_epoch = epoch_batches(prepared, config, 0, substitutions), 0
    steps_per_epoch = len(batches)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps > 0:
        total_steps = min(total_steps, config.max_steps)
    optimizer = nnx.Optimizer(trained, make_optimizer(config, total_steps), wrt=nnx.Param)
    mesh = make_mesh()
    replicate(mesh, trained, optimizer)
    place = batch_placer(mesh)
    train_step = make_train_step(objective.loss, config)

    checkpoints = Checkpoints(workdir / "checkpoints", keep=config.keep_checkpoints)
    best_checkpoint = Checkpoints(workdir / "best", keep=1)
    log = MetricsLog(workdir / "metrics.jsonl")
    progress = dict(best_dev_accuracy=-1.0, best_dev_score=None, best_step=0, train_seconds=0.0, steady_seconds=0.0, steady_examples=0)
    start, progress = _resume(checkpoints, {"model": trained, "optimizer": optimizer}, progress)
    if start:
        print(f"resuming {workdir} from step {start}", file=sys.stderr)
    log.truncate_after(start)
    fixed = fixed_inputs(objective, trained, prepared, config, place)

    base_key = jax.random.key(config.seed)
    eval_every = config.eval_every_steps or steps_per_epoch
    bar = tqdm(total=total_steps, initial=start, desc=f"{prepared.task.name}/{config.objective}", unit="step", dynamic_ncols=True)
    for step in range(start, total_steps):
        epoch, position = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:
            batches, batches_epoch = epoch_batches(prepared, config, epoch, substitutions), epoch
        batch = with_fixed_inputs(batches[position], fixed)
        trained.train()
        traces_before = train_step.traces_of()
        t0 = time.perf_counter()
        metrics = jax.device_get(train_step(trained, optimizer, place(batch), jax.random.fold_in(base_key, step)))
        seconds = time.perf_counter() - t0
        progress["train_seconds"] += seconds
        if train_step.traces_of() == traces_before:  # throughput excludes steps that compiled
            progress["steady_seconds"] += seconds
            progress["steady_examples"] += int(batch["weights"].sum())
        if not np.isfinite(metrics["loss"]):
            raise JaxRobustError(
                f"loss is {metrics['loss']} at step {step + 1}: training diverged (try a lower --config.lr)"
            )
        done = step + 1
        bar.update(1)
        bar.set_postfix(loss=f"{float(metrics['loss']):.4f}", epoch=epoch + 1)
        if done % config.log_every_steps == 0:
            log.write(done, **{k: float(v) for k, v in metrics.items()})
        if done % eval_every == 0 or done == total_steps:
            dev = evaluate(model, prepared.splits["dev"], config, pad_id, num_labels, place)
            log.write(done, **{f"dev_{k}": v for k, v in dev.items()})
            bar.write(f"step {done}: dev accuracy {dev['accuracy']:.4f}, macro-F1 {dev['macro_f1']:.4f}, loss {dev['loss']:.4f}")
            score = dev["accuracy"] if config.select_on == "accuracy" else -dev["loss"]
            best = progress.get("best_dev_score", progress["best_dev_accuracy"])  # (a run saved before select_on)
            if best is None or score > best:
                progress.update(best_dev_score=score, best_dev_accuracy=dev["accuracy"], best_step=done)
                best_checkpoint.save(done, {"model": model}, {"step": done, "dev": dev})
        if done % config.checkpoint_every_steps == 0 or done % steps_per_epoch == 0 or done == total_steps:
            checkpoints.save(done, {"model": trained, "optimizer": optimizer}, progress)
        if on_step is not None:
            on_step(done)
    bar.close()

    best_checkpoint.restore(best_checkpoint.latest_step(), {"model": model})
    dev = evaluate(model, prepared.splits["dev"], config, pad_id, num_labels, place)
    test = evaluate(model, prepared.splits["test"], config, pad_id, num_labels, place)
    checkpoints.close()
    best_checkpoint.close()
    results = {
        "task": prepared.task.name,
        "model": config.model,
        "objective": config.objective,
        "seed": config.seed,
        "best_step": progress["best_step"],
        "total_steps": total_steps,
        "dev_accuracy": dev["accuracy"],
        "dev_macro_f1": dev["macro_f1"],
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "test_loss": test["loss"],
        "parameters": parameter_count(model),  # the classifier's (RIFT's heads and teacher are not part of it)
        "n_train": len(prepared.splits["train"]),
        "n_dev": dev["n"],
        "n_test": test["n"],
        "skipped_empty_texts": prepared.skipped,
        "duplicates_dropped": prepared.duplicates,
        "split_digest": prepared.split_digest,
        "train_seconds": round(progress["train_seconds"], 2),  # all steps, those before a resume included
        # Steady-state throughput: steps that triggered a compilation are left out (None: every step compiled).
        "examples_per_second": (
            round(progress["steady_examples"] / progress["steady_seconds"], 2) if progress["steady_seconds"] else None
        ),
        "train_step_compilations": train_step.traces_of(),  # this session's, one per bucket shape
        "devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
    }
    if jax.process_index() == 0:
        write_json_atomic(workdir / "results.json", results)
    return results


def load_run(workdir: str | os.PathLike) -> tuple[ml_collections.ConfigDict, Prepared]:
    """A finished (or interrupted) run's config and data, with its best-on-dev model loaded."""
    workdir = Path(workdir)
    if not (workdir / "config.json").is_file():
        raise JaxRobustError(f"{workdir} is not a run directory (no config.json)")
    best = workdir / "best"
    if not best.is_dir():
        raise JaxRobustError(f"{workdir} has no best-on-dev checkpoint yet (no {best.name}/)")
    try:
        config = default_config()
        config.update(json.loads((workdir / "config.json").read_text()))
    except (ValueError, TypeError, KeyError) as e:
        raise JaxRobustError(f"{workdir / 'config.json'} is not a valid run config ({e})") from None
    config.buckets, config.label_names = tuple(config.buckets), tuple(config.label_names)
    prepared = prepare(config, pretrained=False)  # every parameter comes from the checkpoint
    checkpoints = Checkpoints(best, keep=1)
    step = checkpoints.latest_step()
    if step is None:
        raise JaxRobustError(f"{workdir} has no best-on-dev checkpoint yet")
    model = prepared.classifier.model
    checkpoints.restore(step, {"model": model})
    checkpoints.close()
    fill_abstract(model, config.seed, params=False)  # its dropout streams (not checkpointed)
    model.eval()
    return config, prepared
