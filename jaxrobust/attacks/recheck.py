"""An attack report re-run in PyTorch transformers: are its successes successes there too?

``recheck(run, report)`` exports the attacked run's best model to Hugging Face format (a temporary
folder), loads it with ``AutoModelForSequenceClassification`` and the exported tokenizer, and
classifies every attacked example's original and perturbed text, truncated at the run's max length as
jaxrobust truncates it. A report is confirmed when both tools predict the same class for every text,
so that every success flips the transformers model and no failure does. The result also goes to
``REPORT/transformers_recheck.json``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from jaxrobust.attacks.report import read_records
from jaxrobust.errors import JaxRobustError
from jaxrobust.io import write_json_atomic


def _probabilities(model, tokenizer, texts: list[str], max_length: int, batch_size: int) -> np.ndarray:
    """``[len(texts), C]`` softmax of the transformers model."""
    import torch

    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            out.append(torch.softmax(model(**enc).logits.float(), -1).numpy())
    return np.concatenate(out)


def recheck(run: str | Path, report: str | Path, batch_size: int = 16) -> dict:
    """Classify the report's texts with the exported run in transformers; see the module docstring."""
    import transformers

    from jaxrobust.models import export_classifier
    from jaxrobust.train import load_run

    run, report = Path(run), Path(report)
    attacked = [r for r in read_records(report) if r["reason"] != "misclassified"]
    if not attacked:
        raise JaxRobustError(f"{report} has no attacked example (every one was misclassified)")
    config, prepared = load_run(run)
    if prepared.task.pair:  # a record holds the attacked text only, not its pair
        raise JaxRobustError(f"{run} is a run of a pair task ({prepared.task.name}); recheck handles single texts only")
    transformers.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as tmp:
        out = export_classifier(prepared.classifier, Path(tmp) / "hf", prepared.task.label_names)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(out, dtype="float32").eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(out)
        clean = _probabilities(model, tokenizer, [r["original_text"] for r in attacked], config.max_length, batch_size)
        perturbed = _probabilities(model, tokenizer, [r["perturbed_text"] for r in attacked], config.max_length, batch_size)
    ours_clean = np.array([r["original_probs"] for r in attacked])
    ours_perturbed = np.array([r["perturbed_probs"] for r in attacked])
    labels = np.array([r["label"] for r in attacked])
    success = np.array([r["success"] for r in attacked])
    flipped = perturbed.argmax(-1) != labels
    result = {
        "run": str(run.resolve()),
        "report": str(report.resolve()),
        "transformers": transformers.__version__,
        "n_attacked": len(attacked),
        "clean_predictions_agree": int(np.sum(clean.argmax(-1) == ours_clean.argmax(-1))),
        "perturbed_predictions_agree": int(np.sum(perturbed.argmax(-1) == ours_perturbed.argmax(-1))),
        "successes": int(success.sum()),
        "successes_confirmed": int(np.sum(success & flipped)),
        "failures_flipped_in_transformers": int(np.sum(~success & flipped)),
        "max_abs_prob_diff": float(max(np.abs(clean - ours_clean).max(), np.abs(perturbed - ours_perturbed).max())),
    }
    result["confirmed"] = result["clean_predictions_agree"] == result["perturbed_predictions_agree"] == len(attacked)
    write_json_atomic(report / "transformers_recheck.json", result)
    return result
