"""Run a TextAttack 0.3.11 word-substitution attack on a Hugging Face classifier; write JSON results.

Runs INSIDE TextAttack's own virtualenv (``bench/textattack_env.py`` builds it and runs this file with
the offline environment: NLTK_DATA, HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, TA_CACHE_DIR). It does not
import jaxrobust. The attack is assembled from TextAttack's components as a careful user would, over
OUR synonym candidates, so both tools search the same space:

* transformation: :class:`CandidateWordSwap`, a ``WordSwap`` returning the candidate list of
  ``word.lower()`` with the original's case put back (TextAttack's own ``recover_word_case``:
  lower / UPPER / Title, anything else left as the candidate is);
* constraints: ``RepeatModification()``, ``StopwordModification`` (nltk's English stop words, see
  :func:`stop_words`), ``MaxModificationRate(max_rate=budget, min_threshold=1)``; with ``--encoder``,
  ``SBERT(model_name=ENCODER, threshold, metric, window_size, compare_against_original=True,
  skip_text_shorter_than_window=False)``: the sentence-similarity constraint, on the same
  all-MiniLM-L6-v2 files jaxrobust's constraint uses (TextAttack checks the window around the newly
  changed word, jaxrobust the windows of every changed word: the same without a window);
* goal: ``UntargetedClassification(model_wrapper, model_batch_size=batch_size)``, no query budget;
* search: ``a2t_like`` -> ``GreedyWordSwapWIR(wir_method="gradient")``,
  ``textfooler_like`` -> ``GreedyWordSwapWIR(wir_method="delete")``;
* model: ``AutoModelForSequenceClassification`` + ``AutoTokenizer`` in eval mode, wrapped in
  ``HuggingFaceModelWrapper``, with ``tokenizer.model_max_length = --max-length`` (the wrapper pads
  every query to ``model_max_length``, 512 for BERT tokenizers, unless told otherwise).

How TextAttack counts words (``textattack.shared.utils.words_from_text``, 0.3.11), which is what
``MaxModificationRate`` and the word indices of every transformation use:

* the text is split on whitespace; inside each whitespace token the words are the maximal runs of
  ``[\\w'\\-_*@]`` (plus a few homoglyph characters), with ``' - _ * @`` stripped from both ends;
  nothing is lower-cased (the docstring says it is; the code does not);
* so ``don't``, ``it's``, ``Rifkin's``, ``well-made``, ``e-mail``, ``a*b`` are ONE word each, while
  a pure ``\\w+`` split gives two (``snake_case`` is one in both); ``x@y.com`` is ``x@y``, ``com``;
  ``U.S.`` is two words (``U``, ``S``), ``3.5`` is two, ``$5`` is one (``5``); punctuation-only tokens
  (``--``, ``...``, ``'``) are no words at all; ``''quoted''`` and ``'CCC'`` are ``quoted``, ``CCC``.
  On the first 20 rotten_tomatoes test sentences TextAttack counts 369 words, jaxrobust (next point) 378:
  every difference is a hyphenated word.
* jaxrobust's ``WORD_RE`` (``\\w+(?:['’]\\w+)*|[^\\w\\s]``, words = its alphanumeric matches) agrees on
  apostrophes (``don't`` one word) but splits hyphenated compounds (``well-made`` -> ``well``, ``made``)
  and words with ``*``/``@``; so on text with hyphens TextAttack counts FEWER words, and a
  hyphenated compound is one swappable unit there (whose lower-cased form is then looked up whole in
  the candidate table, normally without a hit).
* ``MaxModificationRate`` allows ``max(ceil(num_words * max_rate), min_threshold)`` changes in float64,
  so ``ceil(30 * 0.1)`` is 4, not 3 (``30 * 0.1 == 3.0000000000000004``).

Stop words: ``StopwordModification`` tests ``word in stopwords`` case-sensitively, so a sentence-initial
``The`` or ``It`` would not be protected while ``the`` is; the set passed here holds each of nltk's
stop words in lower, Title and UPPER case, i.e. a case-insensitive stop-word test.

Queries: ``num_queries`` counts the texts the goal function scores (its cache hits excluded); the
gradient of ``a2t_like`` (``HuggingFaceModelWrapper.get_grad``: two forward passes and one backward
per example, run in train mode, i.e. with dropout, padded to ``model_max_length`` as well) is not
counted as a query.

    python bench/textattack_runner.py --model DIR --examples E.jsonl --candidates C.json \\
        --recipe a2t_like --budget 0.2 --max-length 64 [--batch-size 32] [--threads N] --out R.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--model", required=True, help="Hugging Face classifier directory")
    p.add_argument("--examples", required=True, help="JSONL of {index, text, label}")
    p.add_argument("--candidates", required=True, help="JSON {word: [candidate, ...]} (lower-case words)")
    p.add_argument("--recipe", required=True, choices=["a2t_like", "textfooler_like"])
    p.add_argument("--budget", type=float, required=True, help="max share of words changed")
    p.add_argument("--max-length", type=int, required=True, help="tokenizer model_max_length (padding length)")
    p.add_argument("--batch-size", type=int, default=32, help="model_batch_size of the goal function")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--num-labels", type=int, default=None,
                   help="override the config's num_labels (a fresh head; for smoke tests on encoders)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", help="sentence-transformers model directory: adds the SBERT similarity constraint")
    p.add_argument("--similarity", type=float, default=0.9, help="with --encoder: the threshold")
    p.add_argument("--metric", default="cosine", choices=["cosine", "angular"], help="with --encoder")
    p.add_argument("--window", type=int, default=None, help="with --encoder: words compared around the change (default: whole text)")
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


def _offline_nltk():
    """``import textattack`` runs ``nltk.download(...)`` once per TA_CACHE_DIR: make it a no-op."""
    import nltk

    nltk.download = lambda *args, **kwargs: True
    return nltk


def stop_words() -> tuple[set[str], int]:
    """nltk's English stop words (from NLTK_DATA) in lower, Title and UPPER case, and their count."""
    nltk = _offline_nltk()
    words = nltk.corpus.stopwords.words("english")
    return {form for w in words for form in (w, w.capitalize(), w.upper())}, len(words)


def load_examples(path: str) -> list[dict]:
    rows = []
    with open(path) as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                rows.append({"index": row["index"], "text": row["text"], "label": int(row["label"])})
    return rows


def build_attack(model_wrapper, candidates: dict[str, list[str]], stopwords: set[str], args):
    import textattack
    from textattack.constraints.pre_transformation import (
        MaxModificationRate,
        RepeatModification,
        StopwordModification,
    )
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwap
    from textattack.transformations.word_swaps.word_swap_embedding import recover_word_case

    class CandidateWordSwap(WordSwap):
        """Swap a word for one of the given candidates of its lower-cased form."""

        def __init__(self, table: dict[str, list[str]]):
            super().__init__()
            self.table = {w.lower(): list(dict.fromkeys(c)) for w, c in table.items()}

        def _get_replacement_words(self, word):
            return [recover_word_case(c, word) for c in self.table.get(word.lower(), ())]

    transformation = CandidateWordSwap(candidates)
    constraints = [
        RepeatModification(),
        StopwordModification(stopwords=stopwords),
        MaxModificationRate(max_rate=float(args.budget), min_threshold=1),
    ]
    if args.encoder:
        from textattack.constraints.semantics.sentence_encoders import SBERT

        constraints.append(SBERT(
            threshold=args.similarity, metric=args.metric, model_name=args.encoder, window_size=args.window,
            compare_against_original=True, skip_text_shorter_than_window=False,
        ))
    goal = UntargetedClassification(model_wrapper, model_batch_size=args.batch_size)
    wir = {"a2t_like": "gradient", "textfooler_like": "delete"}[args.recipe]
    search = GreedyWordSwapWIR(wir_method=wir)
    return textattack.Attack(goal, constraints, transformation, search)


def main(argv=None) -> dict:
    args = parse_args(argv)
    _offline_nltk()  # before anything imports textattack
    # textattack sets PYTORCH_TRANSFORMERS_CACHE (transformers warns it is deprecated); get_grad uses
    # register_backward_hook (torch warns it is deprecated): both harmless here.
    warnings.filterwarnings("ignore", message=".*PYTORCH_TRANSFORMERS_CACHE.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*non-full backward hook.*", category=FutureWarning)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    stopwords, n_stopwords = stop_words()

    import textattack
    import transformers
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult
    from textattack.models.wrappers import HuggingFaceModelWrapper

    transformers.logging.set_verbosity_error()

    start = time.perf_counter()
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    extra = {} if args.num_labels is None else {"num_labels": args.num_labels}
    model = transformers.AutoModelForSequenceClassification.from_pretrained(args.model, **extra).eval()
    tokenizer.model_max_length = args.max_length
    model_wrapper = HuggingFaceModelWrapper(model, tokenizer)
    load_seconds = time.perf_counter() - start

    # Record what reaches the model: padded lengths and sequence counts (queries + gradient passes).
    seen = {"lengths": set(), "sequences": 0, "calls": 0}

    def _record(module, args_, kwargs):
        ids = kwargs.get("input_ids", args_[0] if args_ else None)
        if ids is not None:
            seen["lengths"].add(int(ids.shape[-1]))
            seen["sequences"] += int(ids.shape[0])
            seen["calls"] += 1

    model.register_forward_pre_hook(_record, with_kwargs=True)

    candidates = json.loads(Path(args.candidates).read_text())
    examples = load_examples(args.examples)
    attack = build_attack(model_wrapper, candidates, stopwords, args)

    per_example, pcts = [], []
    counts = {"succeeded": 0, "failed": 0, "skipped": 0}
    queries = []
    start = time.perf_counter()
    for ex in examples:
        result = attack.attack(ex["text"], ex["label"])
        original = result.original_result.attacked_text
        perturbed = result.perturbed_result.attacked_text
        if isinstance(result, SuccessfulAttackResult):
            status = "succeeded"
        elif isinstance(result, SkippedAttackResult):
            status = "skipped"
        elif isinstance(result, FailedAttackResult):
            status = "failed"
        else:
            raise RuntimeError(f"unexpected result type {type(result).__name__}")
        counts[status] += 1
        changed = 0 if status == "skipped" else len(original.all_words_diff(perturbed))
        if status == "succeeded" and original.num_words:
            pcts.append(100.0 * changed / original.num_words)
        if status != "skipped":
            queries.append(result.num_queries)
        per_example.append({
            "index": ex["index"],
            "status": status,
            "perturbed_text": perturbed.text,
            "queries": int(result.num_queries),
            "num_words_changed": changed,
            "num_words": original.num_words,
        })
    seconds = time.perf_counter() - start

    n = len(examples)
    attacked = counts["succeeded"] + counts["failed"]
    out = {
        "recipe": args.recipe,
        "search": f"GreedyWordSwapWIR(wir_method={'gradient' if args.recipe == 'a2t_like' else 'delete'!r})",
        "n": n,
        "seconds": round(seconds, 3),
        "model_load_seconds": round(load_seconds, 3),
        "examples_per_second": round(n / seconds, 4) if seconds > 0 else None,
        "attack_success_rate": counts["succeeded"] / attacked if attacked else None,
        "clean_accuracy": attacked / n if n else None,
        "accuracy_under_attack": counts["failed"] / n if n else None,
        **counts,
        "mean_queries": float(np.mean(queries)) if queries else None,
        "perturbed_word_pct": float(np.mean(pcts)) if pcts else None,
        "budget": args.budget,
        "stop_words": n_stopwords,
        "model_forward_calls": seen["calls"],
        "model_sequences": seen["sequences"],
        "padded_lengths": sorted(seen["lengths"]),
        "per_example": per_example,
        "textattack_version": version("textattack"),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "similarity": None if not args.encoder else {
            "encoder": args.encoder, "threshold": args.similarity, "metric": args.metric, "window": args.window},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp, args.out)
    print(f"{args.recipe}: n={n} succeeded={counts['succeeded']} failed={counts['failed']} "
          f"skipped={counts['skipped']} {seconds:.1f}s ({out['examples_per_second']} ex/s), "
          f"mean queries {out['mean_queries']}, padded lengths {out['padded_lengths']}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
