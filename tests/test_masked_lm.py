"""The masked LM behind BERT-Attack: logits equal transformers' on tiny random models; a checkpoint
without the head is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import MLM_VOCAB as VOCAB
from jaxrobust.errors import JaxRobustError
from jaxrobust.models.masked_lm import load_masked_lm


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_masked_lm_logits_match_transformers(tiny_mlm_dir, family):
    import torch

    directory, reference = tiny_mlm_dir(family)
    mlm = load_masked_lm(str(directory))
    rng = np.random.default_rng(0)
    ids = rng.integers(5, VOCAB, (3, 12)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 8:], mask[2, 5:] = 0, 0  # right padding
    ids[mask == 0] = reference.config.pad_token_id
    got = mlm.logits(ids, mask)
    with torch.no_grad():
        want = reference(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask)).logits.numpy()
    assert got.shape == (3, 12, VOCAB)
    np.testing.assert_allclose(got[mask > 0], want[mask > 0], atol=1e-5)


def test_a_model_without_a_masked_lm_head_is_refused(tiny_model_dir):
    directory, _ = tiny_model_dir("bert", num_labels=2)
    with pytest.raises(JaxRobustError, match="has no masked-LM head .*found classifier.*BertForSequenceClassification"):
        load_masked_lm(str(directory))


def _reference_candidates(reference, tok, text: str, span: tuple[int, int]) -> list[str]:
    """BERT-Attack's candidates of the one-token word at ``span`` of ``text``, from transformers'
    logits: the 48 likeliest whole-word tokens, alphabetic, not the word, a stop word or an antonym."""
    import torch

    from jaxrobust.attacks.bert_attack import _antonyms
    from jaxrobust.attacks.synonyms import STOP_WORDS

    enc = tok(text, return_offsets_mapping=True)
    (position,) = [i for i, (s, e) in enumerate(enc["offset_mapping"]) if e > s and s >= span[0] and e <= span[1]]
    with torch.no_grad():
        logits = reference(input_ids=torch.tensor([enc["input_ids"]])).logits[0, position]
    word, out = text[span[0] : span[1]].lower(), []
    for i in torch.topk(logits, min(48, len(logits))).indices.tolist():
        t = tok.convert_ids_to_tokens(i)
        if t and not t.startswith("##") and t.isalpha() and t != word and t not in STOP_WORDS and (word, t) not in _antonyms() and t not in out:
            out.append(t)
    return out


def test_bert_attack_candidates_are_the_masked_lms_predictions(tiny_mlm_dir):
    from jaxrobust.attacks.bert_attack import MaskedLMCandidates

    directory, reference = tiny_mlm_dir("bert")
    mlm = load_masked_lm(str(directory))
    texts = ["the film was good", "a very boring plot and bad films", "it was great"]
    spans = [[(m.start(), m.end()) for m in __import__("re").finditer(r"\w+", t)] for t in texts]
    got = MaskedLMCandidates(mlm, batch_size=2).in_context(texts, spans)
    multi = 0
    for text, text_spans, per_word in zip(texts, spans, got):
        for span, candidates in zip(text_spans, per_word):
            pieces = mlm.tokenizer.tokenize(text[span[0] : span[1]])
            if len(pieces) == 1:
                assert candidates == _reference_candidates(reference, mlm.tokenizer, text, span)
            else:  # "films" = film ##s: whole words spelled by a word start and its continuations
                multi += 1
                assert all(c.isalpha() and c != "films" for c in candidates)
    assert multi == 1 and any(any(per_word) for per_word in got)


@pytest.mark.slow
def test_bert_attack_successes_are_real(trained_tiny_run, tiny_mlm_dir, tmp_path):
    """``attack --attack bertattack --mlm DIR``: every substitution is one of the masked LM's candidates
    for that word in that text, and a success is a text that, re-tokenised, flips the prediction."""
    import json

    from jaxrobust import cli
    from jaxrobust.attacks.bert_attack import MaskedLMCandidates
    from jaxrobust.attacks.run import load_target
    from jaxrobust.attacks.verify import string_probs
    from jaxrobust.data.encoding import encode
    from jaxrobust.data.tasks import Example

    directory, _ = tiny_mlm_dir("bert")
    out = tmp_path / "report"
    assert cli.main(["attack", "--workdir", str(trained_tiny_run), "--attack", "bertattack", "--mlm", str(directory),
                     "--constraints", "none", "--n", "40", "--budget", "0.5", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    summary = json.loads((out / "results.json").read_text())
    assert summary["attack"] == "bertattack" and summary["synonyms"] == f"mlm:{directory}" and summary["k"] == 4
    target = load_target(str(trained_tiny_run))
    examples = [Example(r["original_text"], r["label"]) for r in records]
    words = [enc.words for enc in encode(target.tokenizer, examples, target.victim.max_length)]
    candidates = MaskedLMCandidates(load_masked_lm(str(directory))).in_context([e.text for e in examples], words)
    for r, spans, per_word in zip(records, words, candidates):
        assert r["substitutions"] or not r["success"]
        assert all(new in per_word[w][:4] and old == r["original_text"][slice(*spans[w])] for w, old, new in r["substitutions"])
    attacked = [r for r in records if r["reason"] != "misclassified"]
    probs = string_probs(target.victim, target.params, target.tokenizer, [Example(r["perturbed_text"], r["label"]) for r in attacked])
    assert [r["success"] for r in attacked] == (probs.argmax(-1) != [r["label"] for r in attacked]).tolist()
    assert any(r["success"] for r in attacked)
