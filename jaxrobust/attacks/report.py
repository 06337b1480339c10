"""Attack reports: the metrics of a run and the files a person or TextAttack's tools can read.

``summarize`` turns the per-example records of ``verify.check`` into the ``results.json`` numbers;
``write_report`` writes, each atomically, into one directory:

- ``results.json``: the summary (sorted keys);
- ``examples.jsonl``: one record per line, in record order;
- ``examples.html``: a self-contained page, changed words highlighted (``<del>`` / ``<ins>``);
- ``textattack.csv``: the columns of TextAttack's CSV logger, changed words as ``[[word]]``.

Counting follows TextAttack: an example the model gets wrong on the clean text is *skipped*; an
example with no attackable word is a *failed* attack (it stays correct under attack). Accuracies and
rates are fractions; a mean over no examples is ``None`` (``null``). Correctly classified examples
with a clean p(true label) below 0.6 are *low confidence*: counted (``low_confidence_n``), flagged
in the page, and left out of ``success_rate_confident``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
from pathlib import Path
from typing import Sequence

from jaxrobust import interrupt
from jaxrobust.data.encoding import word_spans
from jaxrobust.errors import JaxRobustError
from jaxrobust.io import write_text_atomic

CSV_COLUMNS = [
    "original_text",
    "perturbed_text",
    "original_score",
    "perturbed_score",
    "original_output",
    "perturbed_output",
    "ground_truth_output",
    "num_queries",
    "result_type",
]


# ---------------------------------------------------------------------------------------------
# Metrics


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _mean(values: Sequence[float]) -> float | None:
    return _ratio(sum(values), len(values))


# A success against an example the model was barely sure of (p(true label) 0.52, say) says little
# about robustness: such examples are flagged and the success rate is also given without them.
LOW_CONFIDENCE = 0.6


def clean_prob_true(record: dict) -> float:
    """The model's probability of the true label on the clean text."""
    return float(record["original_probs"][record["label"]])


def is_low_confidence(record: dict) -> bool:
    """Classified correctly, but with a clean p(true label) below :data:`LOW_CONFIDENCE`."""
    return record["reason"] != "misclassified" and clean_prob_true(record) < LOW_CONFIDENCE


def result_type(record: dict) -> str:
    """TextAttack's name for the outcome: ``Successful``, ``Failed`` or ``Skipped`` (misclassified)."""
    if record["reason"] == "misclassified":
        return "Skipped"
    return "Successful" if record["success"] else "Failed"


def summarize(records: Sequence[dict], seconds: float, **extra) -> dict:
    """The ``results.json`` content of a run over ``records``, with ``extra`` (attack, model, ...) merged in."""
    n = len(records)
    attacked = [r for r in records if r["reason"] != "misclassified"]  # correct on the clean text
    successful = [r for r in attacked if r["success"]]
    confident = [r for r in attacked if not is_low_confidence(r)]
    summary = dict(
        n=n,
        clean_accuracy=_ratio(len(attacked), n),
        accuracy_under_attack=_ratio(len(attacked) - len(successful), n),
        attack_success_rate=_ratio(len(successful), len(attacked)),
        perturbed_word_pct=_mean([100.0 * r["words_changed"] / r["n_words"] for r in successful]),
        mean_queries=_mean([r["queries"] for r in attacked]),
        # Searches stopped by the query budget (failures unless they flipped within it).
        query_budget_exhausted_n=sum(bool(r.get("query_budget_exhausted")) for r in attacked),
        mean_gradients=_mean([r["gradients"] for r in attacked]),
        seconds=seconds,
        examples_per_second=_ratio(n, seconds) if seconds > 0 else None,
        skipped_misclassified=n - len(attacked),
        skipped_no_candidates=sum(r["reason"] == "no attackable word" for r in records),
        successes=len(successful),
        low_confidence_n=len(attacked) - len(confident),
        success_rate_confident=_ratio(sum(r["success"] for r in confident), len(confident)),
    )
    clash = sorted(set(summary) & set(extra))
    if clash:
        raise ValueError(f"extra keys would overwrite computed metrics: {clash}")
    return {**summary, **extra}


# ---------------------------------------------------------------------------------------------
# Where the substituted words are


def changed_spans(record: dict) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Character spans of the substituted words in the original and in the perturbed text."""
    text, words = record["original_text"], word_spans(record["original_text"])
    original, perturbed, rebuilt = [], [], []
    shift = last = 0
    for w, old, new in sorted(record["substitutions"]):
        start, end = words[w]
        if text[start:end] != old:
            raise ValueError(f"example {record['index']}: word {w} is {text[start:end]!r}, not {old!r}")
        original.append((start, end))
        perturbed.append((start + shift, start + shift + len(new)))
        shift += len(new) - (end - start)
        rebuilt += [text[last:start], new]
        last = end
    if "".join(rebuilt) + text[last:] != record["perturbed_text"]:
        raise ValueError(f"example {record['index']}: substitutions do not give the perturbed text")
    return original, perturbed


def mark(text: str, spans: Sequence[tuple[int, int]], open_: str, close: str, escape=lambda s: s) -> str:
    """``text`` with every span wrapped in ``open_`` ... ``close`` (the pieces passed through ``escape``)."""
    out, last = [], 0
    for start, end in spans:
        out += [escape(text[last:start]), open_, escape(text[start:end]), close]
        last = end
    return "".join(out) + escape(text[last:])


# ---------------------------------------------------------------------------------------------
# Files


def write_report(
    out_dir: str | os.PathLike, records: Sequence[dict], summary: dict, label_names: list[str] | None = None
) -> None:
    """Write ``examples.jsonl``, ``examples.html``, ``textattack.csv`` and, last (a report with a
    ``results.json`` is complete), ``results.json`` into ``out_dir``."""
    out = Path(out_dir)
    files = {  # rendered first: Ctrl-C while rendering leaves the directory as it was
        "examples.jsonl": "".join(json.dumps(r) + "\n" for r in records),
        "textattack.csv": textattack_csv(records),
        "examples.html": examples_html(records, summary, label_names),
        "results.json": json.dumps(summary, indent=2, sort_keys=True) + "\n",
    }
    with interrupt.deferred():  # then written whole: Ctrl-C waits until the report is complete
        # An older report there stops counting as complete before any of its files is replaced,
        # so that a crash half-way never pairs old results with new examples.
        (out / "results.json").unlink(missing_ok=True)
        for name, text in files.items():
            write_text_atomic(out / name, text)


def read_records(report: str | os.PathLike) -> list[dict]:
    """The records of the report folder ``report`` (its ``examples.jsonl``), in record order."""
    path = Path(report) / "examples.jsonl"
    if not path.is_file():
        raise JaxRobustError(f"{report} is not an attack report (no examples.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _argmax(probs: Sequence[float]) -> int:
    return max(range(len(probs)), key=probs.__getitem__)


def textattack_csv(records: Sequence[dict]) -> str:
    """The CSV of TextAttack's ``CSVLogger`` (``color_method="file"``, non-numeric fields quoted)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writeheader()
    for r in records:
        original, perturbed = changed_spans(r)
        writer.writerow(
            dict(
                original_text=mark(r["original_text"], original, "[[", "]]"),
                perturbed_text=mark(r["perturbed_text"], perturbed, "[[", "]]"),
                original_score=1.0 - r["original_probs"][r["label"]],
                perturbed_score=1.0 - r["perturbed_probs"][r["label"]],
                original_output=_argmax(r["original_probs"]),
                perturbed_output=_argmax(r["perturbed_probs"]),
                ground_truth_output=r["label"],
                num_queries=r["queries"],
                result_type=result_type(r),
            )
        )
    return buf.getvalue()


_CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 80em; }
table.summary td, table.summary th { padding: 0.15em 0.8em; text-align: left; border-bottom: 1px solid #ddd; }
.example { border: 1px solid #ccc; border-radius: 4px; margin: 1em 0; padding: 0.5em 1em; }
.meta { color: #444; margin-bottom: 0.4em; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.pair div { white-space: pre-wrap; }
del { background: #fcc; text-decoration: line-through; }
ins { background: #cfc; text-decoration: none; font-weight: bold; }
.badge { padding: 0.1em 0.5em; border-radius: 3px; color: white; font-weight: bold; }
.Successful { background: #c33; } .Failed { background: #393; } .Skipped { background: #888; }
.low { background: #d80; }
"""


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "null" if value is None else str(value)


def _summary_table(summary: dict) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(summary[k]))}</td></tr>" for k in sorted(summary) if k != "validity"
    )
    return f'<table class="summary">{rows}</table>'


def validity_line(v: dict | None) -> str:
    """One sentence on the validity section (see :mod:`jaxrobust.attacks.validity`)."""
    if not v:
        return "Validity: not measured."
    lm = v.get("language_model")
    lm_line = "" if not lm or lm["rejected_share"] is None else (
        f" The language-model filter ({lm['lm']}) rejected {100 * lm['rejected_share']:.0f} % of {lm['candidates']} candidates"
        + (f"; the kept ones lower their {lm['window']}-word window's log-probability by {lm['kept_mean_drop']:.2f} on average."
           if lm["kept_mean_drop"] is not None else "."))
    if not v["n_successes"]:
        return "Validity: no successful example to judge." + lm_line
    return (
        f"Validity of the {v['n_successes']} successful examples: {100 * v['synonym_share']:.0f} % of their "
        f"{v['n_substitutions']} substitutions are WordNet synonyms; sentence similarity to the original "
        f"{v['similarity_mean']:.3f} on average, {v['similarity_min']:.3f} at least ({v['encoder']}); "
        f"{100 * v['pos_kept_share']:.0f} % keep every replaced word's part of speech." + lm_line
    )


def _example_block(r: dict, label_names: list[str] | None) -> str:
    original, perturbed = changed_spans(r)
    kind, y = result_type(r), r["label"]
    label = label_names[y] if label_names else str(y)
    reason = f" ({html.escape(r['reason'])})" if r["reason"] else ""
    if is_low_confidence(r):
        reason += f' <span class="badge low">low confidence: clean p(label) &lt; {LOW_CONFIDENCE:g}</span>'
    meta = (
        f'<span class="badge {kind}">{kind}</span>{reason} &middot; example {r["index"]} &middot; '
        f"label {html.escape(label)} &middot; p(label) {r['original_probs'][y]:.3f} &rarr; "
        f"{r['perturbed_probs'][y]:.3f} &middot; {r['words_changed']}/{r['n_words']} words &middot; "
        f"{r['queries']} queries"
    )
    return (
        f'<div class="example"><div class="meta">{meta}</div><div class="pair">'
        f'<div>{mark(r["original_text"], original, "<del>", "</del>", html.escape)}</div>'
        f'<div>{mark(r["perturbed_text"], perturbed, "<ins>", "</ins>", html.escape)}</div></div></div>'
    )


def examples_html(records: Sequence[dict], summary: dict, label_names: list[str] | None = None) -> str:
    """A self-contained page: the summary, then every attacked example; skipped ones only counted."""
    blocks = [_example_block(r, label_names) for r in records if result_type(r) != "Skipped"]
    skipped = [str(r["index"]) for r in records if result_type(r) == "Skipped"]
    skipped_line = ""
    if skipped:
        skipped_line = (
            f"<p>{len(skipped)} skipped (misclassified on the clean text): examples {', '.join(skipped)}.</p>"
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Attack report</title>'
        f"<style>{_CSS}</style></head><body>\n<h1>Attack report</h1>\n"
        f"<p class=\"validity\">{html.escape(validity_line(summary.get('validity')))}</p>\n{_summary_table(summary)}\n"
        f"<h2>Examples</h2>\n{skipped_line}\n" + "\n".join(blocks) + "\n</body></html>\n"
    )
