"""Everything the project does, on decoders: a tiny GPT-2 (byte-level BPE) and a tiny Llama
(SentencePiece-style BPE), neither with a pad token, fine-tuned, attacked by every attack with the
string-level check, trained with every objective, swept, and exported to transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxrobust import cli
from jaxrobust.attacks.run import load_target
from jaxrobust.attacks.verify import string_probs
from jaxrobust.data.tasks import Example

FAMILIES = ["gpt2", "llama"]
# Some candidates flip the sentiment, others keep it; "dreadful" and "superb" are several tokens in
# both tiny vocabularies (the tokenizers never saw them).
MIXED = {"good": ["boring", "dreadful"], "great": ["good"], "bad": ["great", "superb"], "boring": ["bad"],
         "plot": ["film"], "film": ["plot"]}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = tmp_path_factory.mktemp("decoder-syn") / "neighbours.json"
    path.write_text(json.dumps(MIXED))
    return f"counterfitted:{path}"


def _main(capsys, monkeypatch, *args) -> int:
    monkeypatch.setattr(cli, "_enable_compilation_cache", lambda: None)  # leave this process's JAX config alone
    status = cli.main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert status == 0, err[-2000:]
    return status


def _records(report) -> list[dict]:
    return [json.loads(line) for line in (report / "examples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_decoder_fine_tunes_with_eos_as_its_pad(tiny_decoder_run, family):
    run = tiny_decoder_run(family)
    results = json.loads((run / "results.json").read_text())
    assert results["dev_accuracy"] >= 0.9 and results["test_accuracy"] >= 0.8
    target = load_target(str(run))
    assert target.tokenizer.pad_token is None  # so the run pads with eos
    assert target.victim.pad_id == target.tokenizer.eos_token_id


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attack", ["gradient", "textfooler", "pwws", "genetic", "ascc"])
def test_each_attack_on_a_decoder_flips_what_it_reports(tiny_decoder_run, mixed, family, attack, tmp_path, capsys, monkeypatch):
    """A success is exactly an example whose perturbed string, re-tokenised, is classified away from its
    label; every perturbed text is the original with whole words replaced, spaces kept."""
    run, out = tiny_decoder_run(family), tmp_path / attack
    flags = ["--population", 12, "--generations", 4] if attack == "genetic" else []
    _main(capsys, monkeypatch, "attack", "--workdir", run, "--attack", attack, "--synonyms", mixed, "--n", 20,
          "--budget", 0.5, "--out", out, "--constraints", "none", *flags)
    records = [r for r in _records(out) if r["reason"] != "misclassified"]
    target = load_target(str(run))
    probs = string_probs(target.victim, target.params, target.tokenizer, [Example(r["perturbed_text"], r["label"]) for r in records])
    assert [r["success"] for r in records] == (probs.argmax(-1) != [r["label"] for r in records]).tolist()
    assert any(r["success"] for r in records) and any(not r["success"] for r in records)
    for r in records:
        words = r["original_text"].split(" ")
        for index, old, new in r["substitutions"]:
            assert words[index] == old and new in MIXED[old]
            words[index] = new
        assert " ".join(words) == r["perturbed_text"]


@pytest.mark.parametrize("objective", ["adv", "freelb", "ascc", "rift"])
def test_each_objective_trains_a_decoder(tiny_decoder_dir, objective, tmp_path):
    """Each objective learns the task on the tiny GPT-2, with its own term at work: ADV substitutes
    words in training, ASCC's and RIFT's searches find a KL above zero, RIFT's InfoNCE falls."""
    import conftest
    from jaxrobust.train import train_and_evaluate

    neighbours = tmp_path / "neighbours.json"
    neighbours.write_text(json.dumps({"good": ["great"], "great": ["good"], "bad": ["boring"], "boring": ["bad"],
                                      "film": ["plot"], "plot": ["film"]}))
    c = conftest.make_tiny_config(tiny_decoder_dir("gpt2"), conftest.write_tiny_task(tmp_path))
    c.objective, c.buckets, c.ascc.steps = objective, (16,), 3
    # Half the tiny BERT's step size, for longer: at 1e-2 for 8 epochs, ASCC's loss on GPT-2 spiked back
    # to 4.6 at epoch 4 on one CPU; at 5e-3 for 12 every objective and seed 0-2 ends below 0.12x its start.
    c.lr, c.epochs = 5e-3, 12
    c.synonyms.update(source=f"counterfitted:{neighbours}", k=2, min_cos=0.0)
    results = train_and_evaluate(c, tmp_path / "run")
    steps = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    losses = np.array([r["loss"] for r in steps])
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert results["dev_accuracy"] > 0.9
    if objective == "adv":
        assert np.mean([r["adv_changed"] for r in steps]) > 0.25
    if objective in ("ascc", "rift"):
        assert np.mean([r["kl"] for r in steps]) > 0
    if objective == "rift":
        nce = [r["info_nce"] for r in steps]
        assert np.mean(nce[-5:]) < np.mean(nce[:5])


def test_a_sweep_over_decoder_runs_gives_each_run_its_own_attack(tiny_decoder_run, mixed, tmp_path, capsys, monkeypatch):
    """Two GPT-2 runs (6 epochs and 1): each row of the sweep equals that run's own attack at that budget."""
    runs = [tiny_decoder_run("gpt2", epochs=1), tiny_decoder_run("gpt2")]
    _main(capsys, monkeypatch, "sweep", "--workdir", runs[0], "--workdir", runs[1], "--budgets", "0.5", "--synonyms", mixed, "--n", 20,
          "--out", tmp_path / "sweep", "--constraints", "none")
    swept = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    for row, run in enumerate(runs):
        _main(capsys, monkeypatch, "attack", "--workdir", run, "--attack", "gradient", "--synonyms", mixed, "--n", 20,
              "--budget", 0.5, "--out", tmp_path / f"own-{row}", "--constraints", "none")
        own = json.loads((tmp_path / f"own-{row}" / "results.json").read_text())
        assert swept["accuracy_under_attack"][row] == [pytest.approx(own["accuracy_under_attack"])]
        assert swept["clean_accuracy"][row] == pytest.approx(own["clean_accuracy"])


@pytest.mark.parametrize("family", FAMILIES)
def test_decoder_attack_successes_flip_the_exported_model_in_transformers(tiny_decoder_run, mixed, family, tmp_path, capsys, monkeypatch):
    """``export`` of a decoder run, loaded by transformers: it agrees with the run on every attacked
    example, and the gradient attack's successes are successes there too."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = tiny_decoder_run(family)
    _main(capsys, monkeypatch, "export", "--workdir", run, "--out", tmp_path / "hf")
    _main(capsys, monkeypatch, "attack", "--workdir", run, "--attack", "gradient", "--synonyms", mixed, "--n", 20,
          "--budget", 0.5, "--out", tmp_path / "report", "--constraints", "none")
    records = [r for r in _records(tmp_path / "report") if r["reason"] != "misclassified"]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    for key, probs in (("original_text", "original_probs"), ("perturbed_text", "perturbed_probs")):
        enc = tok([r[key] for r in records], padding=True, return_tensors="pt")
        with torch.no_grad():
            theirs = torch.softmax(model(**enc).logits, -1).numpy()
        np.testing.assert_allclose(theirs, [r[probs] for r in records], atol=1e-4)
    flipped = theirs.argmax(-1) != [r["label"] for r in records]
    assert flipped.tolist() == [r["success"] for r in records] and flipped.any()

    # The recheck command does the same and says so; a report whose success did not flip the model is refused.
    _main(capsys, monkeypatch, "recheck", "--workdir", run, "--report", tmp_path / "report")
    checked = json.loads((tmp_path / "report" / "transformers_recheck.json").read_text())
    assert checked["confirmed"] and checked["n_attacked"] == len(records)
    assert checked["successes"] == checked["successes_confirmed"] == int(flipped.sum()) and checked["failures_flipped_in_transformers"] == 0
    lines = (tmp_path / "report" / "examples.jsonl").read_text().splitlines()
    forged = [json.loads(line) for line in lines]
    first = next(r for r in forged if r["success"])
    first["perturbed_text"] = first["original_text"]  # a "success" that is the unchanged text
    (tmp_path / "report" / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in forged))
    assert cli.main(["recheck", "--workdir", str(run), "--report", str(tmp_path / "report")]) == 1
    assert "successes flip the exported model too" in capsys.readouterr().out
    assert not json.loads((tmp_path / "report" / "transformers_recheck.json").read_text())["confirmed"]
