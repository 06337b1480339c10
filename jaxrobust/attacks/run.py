"""Attack a seeded sample of a task's test split (or, for tuning, its dev split): the ``attack`` command.

Pipeline: sample -> attackable words and candidates (:func:`layout.prepare_examples`) -> shape
groups -> the chosen attack on each group -> string-level check of every final text
(:mod:`verify`) -> report files (:mod:`report`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from jaxrobust import assets
from jaxrobust.attacks import ascc_attack, bert_attack, blackbox, constraints, engine, language_model, pos, report, shapes, synonyms, verify, warmup, wordnet
from jaxrobust.attacks.layout import prepare_examples
from jaxrobust.attacks.sentence_encoder import DEFAULT_ENCODER, SentenceEncoder
from jaxrobust.attacks.validity import validity
from jaxrobust.attacks.victim import Victim
from jaxrobust.data.conventions import conventions
from jaxrobust.data.encoding import encode
from jaxrobust.data.tasks import Example
from jaxrobust.errors import JaxRobustError
from jaxrobust.models.masked_lm import load_masked_lm
from jaxrobust.outputs import REPORT_FILES, check_output_dir, claim_output_dir

ATTACKS = ("gradient", "textfooler", "pwws", "genetic", "ascc", "bertattack")
# Candidate sets of each attack's reference recipe: (top-k, minimum cosine).
#   gradient   -- A2T: top-20 counter-fitted neighbours with cosine >= 0.8
#   textfooler -- TextFooler: top-50, cosine >= 0.5
#   pwws       -- PWWS takes every synonym of its source (WordNet in the paper)
#   genetic    -- Alzantot et al.: 8 nearest neighbours
#   ascc       -- the candidates of the training objectives (config.synonyms): 8, cosine >= 0.5
#   bertattack -- the masked LM's 4 best in context (Turbal et al.'s setting; the cosine is unused)
CANDIDATE_DEFAULTS = {"gradient": (20, 0.8), "textfooler": (50, 0.5), "pwws": (50, 0.0), "genetic": (8, 0.5), "ascc": (8, 0.5),
                      "bertattack": (4, 0.0)}
# The candidate source of each recipe: PWWS searches WordNet's synonyms, as published; the others the
# attack-grade default (WordNet synonyms ranked and cut by the counter-fitted cosine).
DEFAULT_SYNONYMS = "wordnet-cf"
SOURCE_DEFAULTS = {"pwws": "wordnet"}
SPLITS = ("test", "dev")


@dataclasses.dataclass
class AttackSettings:
    attack: str = "gradient"
    synonyms: str | None = None  # None: the attack's default (SOURCE_DEFAULTS, else DEFAULT_SYNONYMS)
    n: int = 500
    budget: float = 0.2
    seed: int = 0
    k: int | None = None  # None: the attack's default (CANDIDATE_DEFAULTS)
    min_cos: float | None = None
    batch_size: int = shapes.ROWS  # rows per device batch, for every model the attack runs
    verify: int = 6  # gradient attack: ranked pairs verified per iteration
    max_iters: int = 20  # gradient attack: steps per example
    population: int = 60  # genetic
    generations: int = 20  # genetic
    ascc_steps: int = 10  # ascc: Adam steps of the relaxed search (learning rate 1, entropy weight 1)
    encoder: str = DEFAULT_ENCODER  # the sentence encoder of the similarity constraint and the validity section
    constraints: str = "default"  # the recipe's (constraints.RECIPES), "none", or a list of constraints.NAMES
    similarity: float | None = None  # None: the recipe's similarity threshold
    window: int | None = None  # None: the recipe's window (words around each change; none: whole text)
    lm_filter: str = ""  # genetic: the causal LM of Jia et al.'s language-model filter ("": off; :mod:`.language_model`)
    split: str = "test"  # the split sampled: test, or dev (tuning chooses settings on dev, never on test)
    query_budget: int | None = None  # model evaluations per example (the gradient pass counts as one); None: no limit
    mlm: str = ""  # bertattack: the masked LM whose predictions are the candidates (a *ForMaskedLM folder, bundle or hub id)

    def __post_init__(self):
        if self.attack not in ATTACKS:
            raise JaxRobustError(f"unknown attack {self.attack!r}; choose one of {', '.join(ATTACKS)}")
        if not 0 < self.budget <= 1:
            raise JaxRobustError(f"budget must be in (0, 1] (a share of the words), got {self.budget}")
        if self.n < 1:
            raise JaxRobustError(f"--n must be at least 1, got {self.n}")
        if self.k is not None and self.k < 1:
            raise JaxRobustError(f"--k must be at least 1 (candidates per word), got {self.k}")
        if self.min_cos is not None and not -1 <= self.min_cos <= 1:
            raise JaxRobustError(f"--min-cos must be a cosine in [-1, 1], got {self.min_cos}")
        for field, flag in (("batch_size", "--batch-size"), ("population", "--population"),
                            ("generations", "--generations"), ("ascc_steps", "--ascc-steps"),
                            ("verify", "verify"), ("max_iters", "max_iters")):
            if getattr(self, field) < 1:
                raise JaxRobustError(f"{flag} must be at least 1, got {getattr(self, field)}")
        assets.check_ref(self.encoder)  # a bad --encoder fails now, not after the attack
        if self.query_budget is not None and self.query_budget < 1:
            raise JaxRobustError(f"--query-budget must be at least 1 (model evaluations per example), got {self.query_budget}")
        if self.query_budget is not None and self.attack == "ascc":
            raise JaxRobustError("--query-budget counts model evaluations; the ascc attack searches by gradient steps (use --ascc-steps)")
        if (self.attack == "bertattack") != bool(self.mlm):
            raise JaxRobustError("--attack bertattack needs --mlm REF (a masked LM such as bert-base-uncased)" if self.mlm == ""
                                 else f"--mlm is BERT-Attack's masked LM, not {self.attack}'s")
        if self.mlm:
            assets.check_ref(self.mlm)
            self.synonyms = "mlm:" + self.mlm  # the candidate source, for the report and its name
        if self.split not in SPLITS:
            raise JaxRobustError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.lm_filter and self.attack != "genetic":
            raise JaxRobustError(f"--lm-filter is the genetic attack's language-model filter, not {self.attack}'s")
        if self.lm_filter:
            assets.check_ref(self.lm_filter)
        rules = self.rules  # an unknown constraint or a threshold outside [0, 1] fails now
        if self.attack == "ascc" and rules.similarity is not None:
            raise JaxRobustError("ascc searches relaxed (continuous) substitutions: the similarity constraint applies to the other attacks")
        self.synonyms = SOURCE_DEFAULTS.get(self.attack, DEFAULT_SYNONYMS) if self.synonyms is None else self.synonyms
        default_k, default_cos = CANDIDATE_DEFAULTS[self.attack]
        self.k = default_k if self.k is None else self.k
        self.min_cos = default_cos if self.min_cos is None else self.min_cos

    @property
    def rules(self) -> constraints.Constraints:
        """The constraints this attack applies."""
        return constraints.parse(self.constraints, self.attack, self.similarity, self.window)

    @property
    def name(self) -> str:
        """Directory name of this attack's results: every setting that changes them (the candidates'
        version, a candidate file's content digest and the constraints included, so that no report
        of other candidates or constraints is reused), those left at their defaults (the minimum
        cosine of the recipe, the search sizes) omitted."""
        slug = lambda ref: ref.replace(":", "-").replace("/", "_")
        source = slug(synonyms.portable_name(self.synonyms))
        cos = "" if self.min_cos == CANDIDATE_DEFAULTS[self.attack][1] else f"-c{self.min_cos:g}"
        search = "".join(
            f"-{tag}{getattr(self, field)}"
            for field, tag in SEARCH_SETTINGS.get(self.attack, ())
            if getattr(self, field) != AttackSettings.__dataclass_fields__[field].default
        )
        lm = "" if not self.lm_filter else "-lm" if self.lm_filter == language_model.DEFAULT_LM else "-lm-" + slug(self.lm_filter)
        split = "" if self.split == "test" else f"-{self.split}"
        search += "" if self.query_budget is None else f"-q{self.query_budget}"
        return (f"{self.attack}-{source}-{synonyms.version_tag()}-k{self.k}{cos}-{self.rules.tag}{search}{lm}"
                f"-b{self.budget:g}-n{self.n}-s{self.seed}{split}")


# The search sizes of each attack that change its results, with their tags in AttackSettings.name.
SEARCH_SETTINGS = {
    "gradient": (("verify", "v"), ("max_iters", "i")),
    "genetic": (("population", "p"), ("generations", "g")),
    "ascc": (("ascc_steps", "a"),),
}


def report_dir(run: Path, settings: AttackSettings) -> Path:
    """Where the attack ``settings`` on training run ``run`` writes its report by default."""
    return Path(run) / "attacks" / settings.name


def sample_indices(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct indices of ``range(n_total)`` drawn by ``seed``, sorted."""
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def attack_examples(
    victim: Victim,
    params,
    tokenizer,
    examples: Sequence[Example],
    indices: Sequence[int],
    candidates_of,
    settings: AttackSettings,
    progress: bool = True,
    warmups: Sequence[warmup.Warmup] = (),
    lm_stats: language_model.FilterStats | None = None,
) -> tuple[list[dict], float]:
    """Attack ``examples`` (``indices``: their positions in the split); records and wall seconds.
    ``warmups``: programs being compiled in the background (:mod:`.warmup`), waited for before the
    search. ``lm_stats`` gathers what the language-model filter (``settings.lm_filter``) rejected."""
    start = time.perf_counter()
    rules = settings.rules
    items = prepare_examples(tokenizer, examples, candidates_of, victim.max_length, settings.k, same_pos=rules.pos)
    if settings.lm_filter:
        items = language_model.filter_candidates(_language_model(settings.lm_filter, settings.batch_size), items, stats=lm_stats)
    for ae, index in zip(items, indices):
        ae.index = int(index)
    attackable = [ae for ae in items if ae.slot_words]
    records_by_index: dict[int, dict] = {}
    # A context manager, so that the bar is closed (the terminal line finished) on Ctrl-C too.
    with tqdm(total=len(items), desc=f"{settings.attack} attack", unit="ex", disable=not progress) as bar:
        idle = [ae for ae in items if not ae.slot_words]
        _collect(records_by_index, verify.check(victim, params, tokenizer, idle, [None] * len(idle), settings.budget,
                                                batch_size=settings.batch_size), bar)
        if attackable:
            group = engine.make_group(tokenizer, attackable, settings.budget, victim.max_length, settings.k)
            encoder = _encoder(settings.encoder, settings.batch_size) if rules.similarity is not None else None
            allowed = None if encoder is None else constraints.SimilarityFilter(encoder, group.members, rules, group.layout.cand_len.shape[1:]).allowed
            for w in warmups:
                w.join()
            finals = verify.FinalTexts(tokenizer, group.members, victim.max_length, victim.pad_id, rules, encoder)
            outcomes = _run_group(victim, params, group, settings, bar, allowed, finals)
            checked = verify.check(victim, params, tokenizer, group.members, outcomes, settings.budget,
                                   rules=rules, encoder=encoder, batch_size=settings.batch_size, probs=finals.probs)
            _collect(records_by_index, checked, bar, count=False)
    records = [records_by_index[ae.index] for ae in items]
    return records, time.perf_counter() - start


def _run_group(victim: Victim, params, group: engine.Group, settings: AttackSettings, bar, allowed, finals) -> list[engine.Outcome]:
    if settings.attack == "gradient":  # the one search that settles texts as it goes (``finals``)
        return engine.run_gradient_group(
            victim, params, group, settings.budget, batch_size=settings.batch_size,
            verify=settings.verify, max_iters=settings.max_iters, allowed=allowed, finals=finals,
            query_budget=settings.query_budget, on_done=bar.update,
        )
    scorer = engine.Scorer(victim, params, group, chunk=settings.batch_size, allowed=allowed, query_budget=settings.query_budget)
    if settings.attack == "ascc":
        return ascc_attack.ascc_group(scorer, settings.budget, steps=settings.ascc_steps, lr=1.0, entropy_weight=1.0, on_done=bar.update)
    if settings.attack == "genetic":
        return blackbox.genetic_group(
            scorer, settings.budget, population=settings.population, generations=settings.generations,
            seed=settings.seed, on_done=bar.update,
        )
    return blackbox.ATTACKS[settings.attack](scorer, settings.budget, on_done=bar.update)


def _collect(into: dict, records: list[dict], bar, count: bool = True) -> None:
    for r in records:
        into[r["index"]] = r
    if count:
        bar.update(len(records))
    done = list(into.values())
    correct = sum(not (r["skipped"] and r["reason"] == "misclassified") for r in done)
    # Shown once attacked examples are checked: texts without an attackable word alone would show
    # 0 % for the whole search.
    if correct and any(not r["skipped"] for r in done):
        bar.set_postfix(success=f"{sum(r['success'] for r in done) / correct:.1%}")


@functools.cache
def _encoder(ref: str, batch_size: int) -> SentenceEncoder:
    # Loaded once per process (a sweep or study writes many reports), in the attack's batch size.
    return SentenceEncoder(ref, batch_size=batch_size)


@functools.cache
def _language_model(ref: str, batch_size: int) -> language_model.LanguageModel:
    return language_model.LanguageModel(ref, batch_size=batch_size)


def load_validity_models(settings: AttackSettings) -> None:
    """Load what the validity section needs (sentence encoder, tagger), so that a bad ``--encoder``
    fails before the attack, not after it; WordNet is read in the background meanwhile."""
    wordnet.prefetch_wordnet(only_local=True)
    _encoder(settings.encoder, settings.batch_size)
    pos.tagger()


def write_results(out_dir: Path, records: list[dict], seconds: float, settings: AttackSettings, label_names,
                  lm_filter: dict | None = None, **extra) -> dict:
    """Write the report files of one attack into ``out_dir``, its validity section included (with
    what the language-model filter did, ``lm_filter``: :meth:`.language_model.FilterStats.summary`);
    returns the summary."""
    settings_fields = {k: v for k, v in dataclasses.asdict(settings).items() if k != "n"}  # n: the examples attacked
    settings_fields["rules"] = dataclasses.asdict(settings.rules)  # the constraints as applied
    settings_fields["synonyms_version"] = synonyms.version_tag()
    settings_fields["constraints_tag"] = settings.rules.tag
    # Flips whose final text failed a constraint on the string-level re-check (not successes).
    extra["constraint_failed_n"] = sum(bool(r.get("constraint_failed")) for r in records)
    extra["validity"] = validity(records, _encoder(settings.encoder, settings.batch_size))
    if lm_filter:
        extra["validity"]["language_model"] = lm_filter
    summary = report.summarize(records, seconds, **settings_fields, **extra)
    claim_output_dir(out_dir, REPORT_FILES)
    report.write_report(out_dir, records, summary, label_names)
    return summary


@dataclasses.dataclass
class Target:
    """A model to attack and the task whose test (or dev) split it is attacked on."""

    victim: Victim
    params: object
    tokenizer: object
    task: object
    source: str  # the run directory or model reference
    classifier: object  # the LoadedClassifier (config, tokenizer, model) it came from
    loaded_splits: dict[str, list[Example]] | None = None  # the whole test and dev splits, when loading the run read them

    @functools.cached_property
    def splits(self) -> dict[str, list[Example]]:
        """The task's test and dev splits, loaded once."""
        if self.loaded_splits is not None:
            return self.loaded_splits
        splits = self.task.load()
        return {"test": splits.test, "dev": splits.dev}

    @property
    def test(self) -> list[Example]:
        return self.splits["test"]


def load_target(
    workdir: str | None = None,
    model: str | None = None,
    task: str | None = None,
    max_length: int = 64,
    text_field: str | None = None,
    label_field: str | None = None,
    text_b_field: str | None = None,
) -> Target:
    """The best-on-dev model of run ``workdir``, or model ``model`` (dir, bundle:ID, hub id) on ``task``
    (for a csv:/jsonl: task, the fields hold its columns)."""
    from jaxrobust.attacks.victim import split_model

    if workdir is not None and model is not None:
        raise JaxRobustError("give either --workdir RUN or --model REF --task TASK, not both")
    loaded_splits = None
    if model is not None:
        from jaxrobust.data import get_task
        from jaxrobust.models import load_classifier

        if task is None:
            raise JaxRobustError("--model needs --task (the task whose test split is attacked)")
        the_task = get_task(task, text_field or "text", label_field or "label", text_b_field)
        loaded = load_classifier(model, the_task.num_labels)
        if loaded.fresh_params:
            raise JaxRobustError(f"{model} has no trained classification head ({', '.join(loaded.fresh_params[:3])} ...)")
        source = model
    else:
        from jaxrobust.train import load_run

        if workdir is None:
            raise JaxRobustError("give --workdir RUN (a training run) or --model REF --task TASK")
        # A run attacks its own task: a task or fields given beside it would be silently ignored.
        if task is not None or text_field or label_field or text_b_field:
            raise JaxRobustError("--task and the --*-field flags go with --model; a --workdir run attacks its own task")
        config, prepared = load_run(workdir)
        loaded, the_task, max_length, source = prepared.classifier, prepared.task, config.max_length, str(workdir)
        if not config.eval_subset:  # the run evaluated the whole splits: they are read already
            loaded_splits = {name: prepared.examples[name] for name in SPLITS}
    tok = loaded.tokenizer
    conv = conventions(tok)
    victim, params = split_model(loaded.model, conv.pad_id, conv.unk_id, max_length)
    return Target(victim, params, tok, the_task, source, loaded, loaded_splits)


def fit_to_split(settings: AttackSettings, n_split: int) -> AttackSettings:
    """``settings`` with ``n`` at most the attacked split's size ``n_split``: what is attacked, and what
    the report is named after."""
    if settings.n <= n_split:
        return settings
    print(f"notice: --n {settings.n} is larger than the {settings.split} split; attacking all {n_split} examples")
    return dataclasses.replace(settings, n=n_split)


def run_attack(target: Target, settings: AttackSettings, table, out_dir: Path, progress: bool = True) -> dict:
    """Attack a seeded sample of ``target``'s test (or dev: ``settings.split``) split with candidates
    from ``table`` (a :class:`~jaxrobust.attacks.synonyms.CandidateTable`; None for BERT-Attack, whose
    candidates are its masked LM's); write the report into ``out_dir``."""
    split = target.splits[settings.split]
    settings = fit_to_split(settings, len(split))
    check_output_dir(out_dir, REPORT_FILES)  # never replaces a user's files: fails before the attack
    indices = sample_indices(len(split), settings.n, settings.seed)
    examples = [split[i] for i in indices]
    candidates_of = bert_attack.MaskedLMCandidates(load_masked_lm(settings.mlm)) if settings.attack == "bertattack" else table.candidates
    # The model programs compile in the background while the validity models load (module warmup).
    lengths = [e.length for e in encode(target.tokenizer, examples, target.victim.max_length)]
    warmups = [warmup.start_victim(target.victim, target.params, lengths, settings.batch_size, gradient=settings.attack == "gradient")]
    encoder = _encoder(settings.encoder, settings.batch_size)  # a bad --encoder fails here, before the attack
    if settings.rules.similarity is not None:
        warmups.append(warmup.start_encoder(encoder, [e.text if e.text_b is None else e.text_b for e in examples], settings.rules.window))
    load_validity_models(settings)  # the tagger and WordNet (nltk): while both compile
    lm_stats = language_model.FilterStats()
    records, seconds = attack_examples(
        target.victim, target.params, target.tokenizer, examples, indices, candidates_of, settings, progress, warmups, lm_stats,
    )
    lm = lm_stats.summary(_language_model(settings.lm_filter, settings.batch_size)) if settings.lm_filter else None
    return write_results(
        out_dir, records, seconds, settings, target.task.label_names,
        model=target.source, task=target.task.name, max_length=target.victim.max_length, lm_filter=lm,
    )
