"""The genetic attack's language-model filter (Jia et al.'s, on the original text) on a tiny causal Llama."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import decoder_tokenizer
from jaxrobust import cli
from jaxrobust.attacks.constraints import window_bounds, window_text
from jaxrobust.attacks import run
from jaxrobust.attacks.language_model import DEFAULT_LM, FilterStats, LanguageModel, filter_candidates
from jaxrobust.attacks.layout import prepare_examples
from jaxrobust.data.tasks import Example

torch = pytest.importorskip("torch")
TEXTS = ["the film was good and the plot was great", "a boring film", "it was not very bad , the films were boring"]
CANDIDATES = {"good": ["great", "bad", "boring"], "great": ["good", "bad"], "bad": ["boring", "good"],
              "boring": ["bad", "great", "good"], "film": ["plot", "films"], "plot": ["film"], "films": ["film"]}


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny random causal Llama with its SentencePiece-style tokenizer (bos first), saved by transformers."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = decoder_tokenizer("llama")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=64, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # a sharper distribution than the initialisation's, so that swaps differ
        for p in model.parameters():
            p.mul_(8.0)
    directory = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory, model, tok


def _reference_logprobs(model, tok, texts):
    """log p(text) by transformers: each token given the bos and the tokens before it."""
    out = []
    for text in texts:
        ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), -1)
        out.append(float(logp.gather(1, ids[0, 1:, None]).sum()))
    return np.array(out)


def test_text_log_probabilities_equal_transformers(lm_dir):
    directory, model, tok = lm_dir
    texts = TEXTS + ["good", "the films were great , hello world"]
    ours = LanguageModel(str(directory), batch_size=2).logprobs(texts)  # several length batches
    np.testing.assert_allclose(ours, _reference_logprobs(model, tok, texts), atol=1e-4)


def test_the_filter_keeps_exactly_the_candidates_whose_window_stays_likely(lm_dir, tiny_model_dir):
    """Every (word, candidate) of the prepared examples, its 6-word window scored by transformers:
    kept exactly when the drop is below the threshold (here between the two middle drops, so both happen); slots
    left without a candidate go."""
    from jaxrobust.models.loading import load_tokenizer

    directory, model, tok = lm_dir
    victim_tok = load_tokenizer(tiny_model_dir("bert", num_labels=2)[0])
    items = prepare_examples(victim_tok, [Example(t, 0) for t in TEXTS], lambda w: CANDIDATES.get(w, []), max_length=32, max_candidates=3)
    expected = {}
    for n, ae in enumerate(items):
        spans = ae.encoded.words
        bounds = window_bounds([ae.text[s:e] for s, e in spans], 6)
        for slot, w in enumerate(ae.slot_words):
            lo, hi = bounds[w]
            original = window_text(ae.text, spans, lo, hi)
            for c in ae.candidates[slot]:
                swapped = ae.text[spans[lo][0]:spans[w][0]] + c + ae.text[spans[w][1]:spans[hi - 1][1]]
                expected[n, w, c] = float(np.diff(_reference_logprobs(model, tok, [swapped, original]))[0])
    # Halfway between the two middle drops (a threshold equal to one of them would make the test turn on
    # float32 rounding); the gap is far wider than the two implementations' 1e-4 agreement.
    drops = sorted(expected.values())
    mid = len(drops) // 2
    threshold = (drops[mid - 1] + drops[mid]) / 2
    assert drops[mid] - drops[mid - 1] > 1e-3
    stats = FilterStats()
    kept = filter_candidates(LanguageModel(str(directory)), items, window=6, max_drop=threshold, stats=stats)
    got = {(n, w, c) for n, ae in enumerate(kept) for w, cands in zip(ae.slot_words, ae.candidates) for c in cands}
    assert got == {key for key, drop in expected.items() if drop < threshold}
    assert 0 < len(got) < len(expected) and stats.candidates == len(expected) and stats.rejected == len(expected) - len(got)
    for ae, before in zip(kept, items):  # the candidates' tokens follow the candidates
        for w, cands, ids in zip(ae.slot_words, ae.candidates, ae.candidate_ids):
            slot = before.slot_words.index(w)
            assert ids == [before.candidate_ids[slot][before.candidates[slot].index(c)] for c in cands]


def test_the_genetic_attack_reports_its_language_model_filter(trained_tiny_run, lm_dir, tmp_path, capsys, monkeypatch):
    directory, _, _ = lm_dir
    table = tmp_path / "syn.json"
    table.write_text(json.dumps(CANDIDATES))
    monkeypatch.setattr(cli, "_enable_compilation_cache", lambda: None)
    status = cli.main(["attack", "--workdir", str(trained_tiny_run), "--attack", "genetic", "--synonyms", f"counterfitted:{table}",
                       "--n", "10", "--budget", "0.5", "--population", "8", "--generations", "3", "--constraints", "none",
                       "--lm-filter", str(directory), "--out", str(tmp_path / "report")])
    assert status == 0, capsys.readouterr().err[-2000:]
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    stats = results["validity"]["language_model"]
    assert results["lm_filter"] == str(directory) and stats["lm"] == str(directory) and stats["window"] == 6 and stats["max_drop"] == 5.0
    assert stats["candidates"] > 0 and 0 <= stats["rejected_share"] <= 1
    assert f"The language-model filter ({directory}) rejected" in capsys.readouterr().out
    assert "-lm-" in run.AttackSettings(attack="genetic", lm_filter=str(directory)).name
    assert run.AttackSettings(attack="genetic", lm_filter=DEFAULT_LM).name.endswith("-lm-b0.2-n500-s0")


@pytest.mark.parametrize("args, message", [
    (["--attack", "gradient", "--lm-filter"], "--lm-filter is the genetic attack's language-model filter, not gradient's"),
    (["--attack", "genetic", "--lm-filter", "bundle:nope"], "bundle:nope"),
])
def test_bad_language_model_settings_fail_in_one_line(trained_tiny_run, args, message, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_enable_compilation_cache", lambda: None)
    status = cli.main(["attack", "--workdir", str(trained_tiny_run), "--n", "4", *args])
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_an_encoder_is_not_a_language_model(tiny_model_dir):
    from jaxrobust.errors import JaxRobustError

    with pytest.raises(JaxRobustError, match="is not a causal language model"):
        LanguageModel(str(tiny_model_dir("bert", num_labels=2)[0]))
