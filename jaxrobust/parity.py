"""Numerical parity of a jaxrobust classifier with the transformers (PyTorch) reference.

Both load the same checkpoint; the head the checkpoint lacks is initialised in JAX and copied into
the PyTorch model, so every number compared comes from the same weights. A model directory that
holds a GGUF file (``bundle:smollm2-135m``) is compared as a causal language model with
transformers' own loading of that file (``from_pretrained(dir, gguf_file=...)``), which checks the
GGUF import itself: names, the query/key permutation, dequantisation, config and tokenizer.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxrobust.errors import JaxRobustError
from jaxrobust.models import gguf_import, load_classifier
from jaxrobust.models.registry import family
from jaxrobust.models.weight_rules import rule_state_dict

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
    loaded = load_classifier(ref, num_labels, lm_head=True)
    gguf = gguf_import.gguf_file(loaded.path)
    if gguf is not None:
        return _gguf_parity(loaded, gguf, sentences)
    reference = AutoModelForSequenceClassification.from_pretrained(str(loaded.path), num_labels=num_labels).eval()
    head = rule_state_dict(loaded.model, family(loaded.config.model_type), loaded.config, only=loaded.fresh_params)
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


def _gguf_parity(loaded, gguf, sentences: list[str]) -> ParityResult:
    """Causal-LM logits and last hidden states of ``loaded`` against transformers' model and
    tokenizer read from GGUF file ``gguf``."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    reference = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    their_tokenizer = PreTrainedTokenizerFast.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    ours_ids = loaded.tokenizer(sentences, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    theirs_ids = their_tokenizer(sentences, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    if ours_ids != theirs_ids:
        first = next(i for i, (a, b) in enumerate(zip(ours_ids, theirs_ids)) if a != b)
        raise JaxRobustError(f"the tokenizer read from {gguf.name} differs from transformers' GGUF tokenizer on "
                             f"sentence {first + 1} ({sentences[first][:40]!r}): the logits cannot be compared")
    batch = loaded.tokenizer(sentences, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        ref_out = reference(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), output_hidden_states=True)
    ours = loaded.model(jnp.asarray(ids), jnp.asarray(mask))
    real = mask.astype(bool)
    hidden = np.abs(ref_out.hidden_states[-1].numpy() - np.asarray(ours.last_hidden_state))[real]
    logits = np.abs(ref_out.logits.numpy() - np.asarray(loaded.model.lm_logits(ours.last_hidden_state)))[real]
    return ParityResult(hidden_diff=float(hidden.max()), logits_diff=float(logits.max()))
