"""Numerical parity of a jaxrobust classifier with the transformers (PyTorch) reference.

Both load the same checkpoint; the head the checkpoint lacks is initialised in JAX and copied into
the PyTorch model, so every number compared comes from the same weights.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.models import load_classifier
from jaxrobust.models.weights import to_hf_state_dict

TOLERANCE = 1e-4

# Short, long (truncated at MAX_LENGTH), non-ASCII, and lengths that differ so the batch is padded.
SENTENCES = [
    "A gripping, beautifully acted film.",
    "The plot meanders for two hours and then simply stops, " * 30,
    "Naïve café owners in Zürich — «très drôle» 東京 😀!",
    "it's not bad",
    "Despite a slow start, the second half recovers with sharp dialogue and a great score.",
]
MAX_LENGTH = 256


@dataclasses.dataclass
class ParityResult:
    hidden_diff: float  # max |Δ| of the last hidden states over real (unpadded) tokens
    logits_diff: float

    @property
    def max_abs_diff(self) -> float:
        return max(self.hidden_diff, self.logits_diff)


def run_parity(ref: str, num_labels: int = 2, sentences: list[str] = SENTENCES) -> ParityResult:
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()  # its report on the fresh head is expected here
    transformers.logging.disable_progress_bar()
    jax.config.update("jax_default_matmul_precision", "highest")
    loaded = load_classifier(ref, num_labels)
    reference = AutoModelForSequenceClassification.from_pretrained(str(loaded.path), num_labels=num_labels).eval()
    head = to_hf_state_dict(loaded.model, loaded.config, only=loaded.fresh_params)
    result = reference.load_state_dict({k: torch.tensor(v) for k, v in head.items()}, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys

    batch = loaded.tokenizer(sentences, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
    mask = batch["attention_mask"]
    with torch.no_grad():
        ref_out = reference(**{k: torch.from_numpy(v) for k, v in batch.items()}, output_hidden_states=True)
    ours = loaded.model(
        jnp.asarray(batch["input_ids"]), jnp.asarray(mask), jnp.asarray(batch["token_type_ids"]) if "token_type_ids" in batch else None
    )
    hidden = np.abs(ref_out.hidden_states[-1].numpy() - np.asarray(ours.last_hidden_state))
    return ParityResult(
        hidden_diff=float(hidden[mask.astype(bool)].max()),
        logits_diff=float(np.abs(ref_out.logits.numpy() - np.asarray(ours.logits)).max()),
    )
