"""The bad-input suite: every mistake a user can make at the command line ends in one ``error:`` line
that names the problem, exit status 2, no traceback, nothing half-written in the workdir or the
asset cache, and the user's own files untouched.

Each case runs ``jaxrobust.cli.main(argv)`` in-process (as ``python -m jaxrobust`` would, minus the
interpreter start-up); ``test_cli.py`` and ``test_attack_cli.py`` run real subprocesses for exit
statuses and signals.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from jaxrobust import cli

# name -> (argv, regex the error line must match). Placeholders in argv: {tmp} the case's folder,
# {run} a finished tiny run, {model} a tiny Hugging Face model folder, {csv} a good tiny CSV,
# {exp} an experiment config training the tiny model, {table} a good neighbour table.
CASES: dict[str, tuple[list[str], str]] = {
    # --- tasks and data files ---
    "unknown task": (["data", "describe", "not_a_task"], r"unknown task 'not_a_task'; known tasks: .*csv:PATH"),
    "csv missing": (["data", "describe", "csv:{tmp}/nope.csv"], r"no such file: .*nope\.csv"),
    "csv empty": (["data", "describe", "csv:{tmp}/empty.csv"], r"empty\.csv"),
    "csv header only": (["data", "describe", "csv:{tmp}/header.csv"], r"header\.csv"),
    "csv without label column": (["data", "describe", "csv:{tmp}/nolabel.csv"], r"no column 'label'"),
    "csv wrong text field": (["data", "describe", "csv:{csv}", "--text-field", "review"], r"no column 'review'"),
    "csv not utf-8": (["data", "describe", "csv:{tmp}/latin1.csv"], r"latin1\.csv:3: not UTF-8 \(byte 0xe9"),
    "csv empty label cell": (["data", "describe", "csv:{tmp}/emptylabel.csv"], r"emptylabel\.csv:4: empty label"),
    "csv row without label": (["data", "describe", "csv:{tmp}/shortrow.csv"], r"shortrow\.csv:5: no 'label' cell"),
    "csv single class": (["data", "describe", "csv:{tmp}/oneclass.csv"], r"single class 'pos'; a classifier needs at least two"),
    "csv too few rows": (["data", "describe", "csv:{tmp}/tiny5.csv"], r"too few rows per class"),
    "jsonl broken row": (["data", "describe", "jsonl:{tmp}/broken.jsonl"], r"broken\.jsonl:2: not valid JSON"),
    "jsonl row not an object": (["data", "describe", "jsonl:{tmp}/array.jsonl"], r"array\.jsonl:2: expected a JSON object"),
    "jsonl row without label": (["data", "describe", "jsonl:{tmp}/nolabel.jsonl"], r"nolabel\.jsonl:3: no field 'label'"),
    "undeclared label": (
        ["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.label_names=good,bad"],
        r"label 'pos' is not one of the declared labels good, bad",
    ),
    "label names on a registered task": (
        ["train", "--config", "quickstart:ft", "--workdir", "{tmp}/run", "--config.label_names=a,b"],
        r"apply to csv:PATH / jsonl:PATH tasks only",
    ),
    "dev file missing": (
        ["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.dev_file={tmp}/nodev.csv"],
        r"no such file: .*nodev\.csv \(the dev file\)",
    ),
    "all texts empty": (["data", "describe", "csv:{tmp}/blank.csv"], r"blank\.csv"),
    # --- models ---
    "unknown bundle": (["parity", "bundle:nope"], r"bundle:nope"),
    "folder without weights": (["parity", "{tmp}/noweights"], r"no \*\.safetensors weights in"),
    "folder without config": (["parity", "{tmp}/noconfig"], r"no config\.json in .*not a Hugging Face model directory"),
    "truncated safetensors": (["parity", "{tmp}/truncated"], r"safetensors"),
    "model is a file": (["parity", "{csv}"], r"is a file; expected a directory"),
    "unsupported architecture": (["parity", "{tmp}/gpt"], r"unsupported architecture model_type='gpt_neo'"),
    "parity zero labels": (["parity", "{model}", "--num-labels", "0"], r"num.labels"),
    "train on a missing model": (
        ["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.model={tmp}/nomodel"], r"no such directory: .*nomodel"
    ),
    # --- experiment configs and overrides ---
    "unknown experiment": (["train", "--config", "nope", "--workdir", "{tmp}/run"], r"no experiment config 'nope'; known experiments:"),
    "unknown override key": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.learning_rate=1"], r"config has no key 'learning_rate'"),
    "mistyped key": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.rift.tauu=1"], r"config has no key 'rift.tauu'"),
    "lr not a number": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.lr=abc"], r"lr='abc': expected float, got str"),
    "batch size not an integer": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.batch_size=2.5"], r"batch_size='2.5': expected int, got float"),
    "key without value": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.lr"], r"not of the form --config.key=value"),
    "max length above the buckets": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.max_length=64"], r"largest bucket 16 is below max_length 64"),
    "batch size 0": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.batch_size=0"], r"--config.batch_size must be a positive integer, got 0"),
    "batch size negative": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.batch_size=-4"], r"--config.batch_size must be a positive integer, got -4"),
    "epochs 0": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.epochs=0"], r"--config.epochs must be a positive integer, got 0"),
    "epochs negative": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.epochs=-1"], r"--config.epochs must be a positive integer, got -1"),
    "unknown objective": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.objective=magic"], r"unknown objective 'magic'"),
    "max steps negative": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.max_steps=-1"], r"--config.max_steps must be 0"),
    "warmup ratio above 1": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.warmup_ratio=1.5"], r"--config.warmup_ratio must be a number in \[0, 1\)"),
    "lr zero": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.lr=0"], r"--config.lr must be a number in \(0, inf\)"),
    "bucket zero": (["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.buckets=0,16"], r"--config.buckets must be positive token lengths"),
    "synonyms k 0": (
        ["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.objective=ascc", "--config.synonyms.k=0"],
        r"--config.synonyms.k must be a positive integer",
    ),
    "synonyms unknown source": (
        ["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.objective=rift", "--config.synonyms=nope"],
        r"unknown synonym source 'nope'",
    ),
    "rift batch not divisible by classes": (
        ["train", "--config", "{exp}", "--workdir", "{tmp}/run", "--config.objective=rift", "--config.batch_size=7"],
        r"objective rift needs --config.batch_size divisible by the 2 classes, got 7",
    ),
    "a study is not a training run": (["train", "--config", "robustness_minilm", "--workdir", "{tmp}/run"], r"is a study, not a training run"),
    "study with an unknown method": (
        ["experiment", "--config", "robustness_minilm", "--workdir", "{tmp}/run", "--config.methods=ft,bogus"], r"unknown method 'bogus'"
    ),
    "study with an unknown attack": (
        ["experiment", "--config", "robustness_minilm", "--workdir", "{tmp}/run", "--config.attacks=gradient,nope"], r"unknown attack 'nope'"
    ),
    "study attacks with Jia's table but no path": (
        ["experiment", "--config", "robustness_minilm_jia", "--workdir", "{tmp}/run"], r"counterfitted:PATH needs a file"
    ),
    "workdir is a file": (["train", "--config", "{exp}", "--workdir", "{csv}"], r"is a file; give a folder"),
    "workdir is a Hugging Face folder": (
        ["train", "--config", "{exp}", "--workdir", "{tmp}/hf", "--overwrite"], r"holds a config\.json that is not a jaxrobust run"
    ),
    # --- runs: evaluate, attack, export ---
    "evaluate a missing workdir": (["evaluate", "--workdir", "{tmp}/nope"], r"nope is not a run directory"),
    "evaluate a run without checkpoint": (["evaluate", "--workdir", "{tmp}/unfinished"], r"has no best-on-dev checkpoint yet"),
    "evaluate a corrupt best": (["evaluate", "--workdir", "{tmp}/corrupt"], r"checkpoint .* is corrupt or does not fit"),
    "attack a missing workdir": (["attack", "--workdir", "{tmp}/nope"], r"nope is not a run directory"),
    "attack a run without checkpoint": (["attack", "--workdir", "{tmp}/unfinished"], r"has no best-on-dev checkpoint yet"),
    "attack a corrupt best": (["attack", "--workdir", "{tmp}/corrupt", "--synonyms", "counterfitted:{table}"], r"is corrupt or does not fit"),
    "export a missing workdir": (["export", "--workdir", "{tmp}/nope", "--out", "{tmp}/out"], r"nope is not a run directory"),
    "export a corrupt best": (["export", "--workdir", "{tmp}/corrupt", "--out", "{tmp}/out"], r"is corrupt or does not fit"),
    "export into a user folder": (["export", "--workdir", "{run}", "--out", "{tmp}/mine"], r"is not empty and is not a jaxrobust export"),
    "export into a user folder with force": (
        ["export", "--workdir", "{run}", "--out", "{tmp}/mine", "--force"], r"is not empty and is not a jaxrobust export"
    ),
    "recheck a folder that is no report": (
        ["recheck", "--workdir", "{run}", "--report", "{tmp}/nope"], r"nope is not an attack report \(no examples\.jsonl\)"
    ),
    "export onto a file": (["export", "--workdir", "{run}", "--out", "{tmp}/mine/thesis.tex"], r"thesis\.tex is a file"),
    "export under a file": (["export", "--workdir", "{run}", "--out", "{tmp}/mine/thesis.tex/model"], r"cannot write to .*thesis\.tex"),
    "export into the current folder": (["export", "--workdir", "{run}", "--out", "."], r"is the current folder"),
    # --- attack flags ---
    "budget 0": (["attack", "--workdir", "{run}", "--budget", "0"], r"budget must be in \(0, 1\]"),
    "budget above 1": (["attack", "--workdir", "{run}", "--budget", "1.5"], r"budget must be in \(0, 1\]"),
    "budget negative": (["attack", "--workdir", "{run}", "--budget", "-0.1"], r"budget must be in \(0, 1\]"),
    "n 0": (["attack", "--workdir", "{run}", "--n", "0"], r"--n must be at least 1, got 0"),
    "n negative": (["attack", "--workdir", "{run}", "--n", "-3"], r"--n must be at least 1, got -3"),
    "unknown attack": (["attack", "--workdir", "{run}", "--attack", "magic"], r"unknown attack 'magic'"),
    "unknown synonym source": (["attack", "--workdir", "{run}", "--synonyms", "nope"], r"unknown synonym source 'nope'"),
    "counterfitted without a file": (["attack", "--workdir", "{run}", "--synonyms", "counterfitted:"], r"counterfitted:PATH needs a file"),
    "counterfitted file missing": (["attack", "--workdir", "{run}", "--synonyms", "counterfitted:{tmp}/none.json"], r"no such file: .*none\.json"),
    "counterfitted file malformed": (["attack", "--workdir", "{run}", "--synonyms", "counterfitted:{tmp}/bad.txt"], r"bad\.txt"),
    "min cos above 1": (["attack", "--workdir", "{run}", "--min-cos", "2"], r"min.cos"),
    "k 0": (["attack", "--workdir", "{run}", "--k", "0"], r"k must be"),
    "attack batch size 0": (["attack", "--workdir", "{run}", "--batch-size", "0"], r"batch.size"),
    "genetic population 0": (["attack", "--workdir", "{run}", "--attack", "genetic", "--population", "0"], r"population"),
    "workdir and model together": (["attack", "--workdir", "{run}", "--model", "{model}", "--task", "csv:{csv}"], r"--workdir.*--model|--model.*--workdir"),
    "model without task": (["attack", "--model", "{model}"], r"--model needs --task"),
    "unknown sentence encoder": (["attack", "--workdir", "{run}", "--encoder", "bundle:nope"], r"unknown bundle bundle:nope"),
    "unknown constraint": (["attack", "--workdir", "{run}", "--constraints", "pos,grammar"], r"unknown constraint 'grammar'"),
    "similarity threshold above 1": (["attack", "--workdir", "{run}", "--similarity-threshold", "1.2"], r"similarity threshold must be in \[0, 1\], got 1\.2"),
    "similarity threshold negative": (["attack", "--workdir", "{run}", "--similarity-threshold", "-0.5"], r"similarity threshold must be in \[0, 1\]"),
    "window without similarity": (["attack", "--workdir", "{run}", "--attack", "pwws", "--window", "5"], r"--window need the similarity constraint"),
    "query budget 0": (["attack", "--workdir", "{run}", "--query-budget", "0"], r"--query-budget must be at least 1 .*got 0"),
    "query budget negative": (["attack", "--workdir", "{run}", "--attack", "textfooler", "--query-budget", "-5"], r"--query-budget must be at least 1"),
    "bertattack without a masked LM": (["attack", "--workdir", "{run}", "--attack", "bertattack"], r"--attack bertattack needs --mlm REF"),
    "masked LM for another attack": (["attack", "--workdir", "{run}", "--mlm", "{model}"], r"--mlm is BERT-Attack's masked LM, not gradient's"),
    "masked LM without its head": (["attack", "--workdir", "{run}", "--attack", "bertattack", "--mlm", "{model}"],
                                   r"has no masked-LM head \(no cls\.predictions\.transform\.dense\.weight; found classifier.*BertForSequenceClassification"),
    "synonym file with no usable entries": (
        ["attack", "--workdir", "{run}", "--synonyms", "counterfitted:{tmp}/stopwords.json"], r"stopwords\.json has no usable entries"
    ),
    # --- sweeps and synonym sources ---
    "sweep budgets empty": (["sweep", "--workdir", "{run}", "--budgets", ""], r"budgets"),
    "sweep budgets comma": (["sweep", "--workdir", "{run}", "--budgets", ","], r"budgets"),
    "sweep budget not a number": (["sweep", "--workdir", "{run}", "--budgets", "0.1,abc"], r"abc"),
    "sweep budget above 1": (["sweep", "--workdir", "{run}", "--budgets", "1.5"], r"1\.5"),
    "sweep over runs of different tasks": (
        ["sweep", "--workdir", "{run}", "--workdir", "{tmp}/other_task_run"], r"cannot sweep runs of different tasks together"
    ),
    "synonyms describe k 0": (["synonyms", "describe", "wordnet", "--k", "0"], r"k must be"),
    "synonyms describe unknown source": (["synonyms", "describe", "nope"], r"unknown synonym source 'nope'"),
}


def _write_files(tmp: Path, run: Path, model: Path) -> dict[str, str]:
    """The case folder: bad data files, bad model folders, broken runs and a user's own folder."""
    good = "".join(f"the film was good {i},pos\nthe film was bad {i},neg\n" for i in range(12))
    files = {
        "empty.csv": "",
        "header.csv": "text,label\n",
        "nolabel.csv": "text,stars\ngood,5\n",
        "latin1.csv": None,
        "emptylabel.csv": "text,label\n" + "good,pos\nbad,neg\nfine,\n" + good,
        "shortrow.csv": "text,label\n" + "good,pos\nbad,neg\nnice,pos\nawful\n" + good,
        "oneclass.csv": "text,label\n" + "".join(f"good {i},pos\n" for i in range(30)),
        "tiny5.csv": "text,label\na,pos\nb,pos\nc,neg\nd,neg\ne,pos\n",
        "blank.csv": "text,label\n" + "".join(f" ,{'pos' if i % 2 else 'neg'}\n" for i in range(20)),
        "broken.jsonl": '{"text": "good", "label": "pos"}\n{"text": "bad", "label":\n',
        "array.jsonl": '{"text": "good", "label": "pos"}\n[1, 2]\n',
        "nolabel.jsonl": '{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n{"text": "fine"}\n',
        "bad.txt": "this is not a vector table\n",
        "stopwords.json": '{"the": ["a", "an"], "42": ["7"], "it\'s": ["its"]}\n',
    }
    for name, text in files.items():
        if text is not None:
            (tmp / name).write_text(text)
    (tmp / "latin1.csv").write_bytes(b"text,label\ngood,pos\nd\xe9j\xe0 vu,neg\n" + good.encode())
    # Model folders.
    for name in ("noweights", "truncated", "gpt"):
        shutil.copytree(model, tmp / name)
    (tmp / "noweights" / "model.safetensors").unlink()
    weights = (tmp / "truncated" / "model.safetensors").read_bytes()
    (tmp / "truncated" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    config = json.loads((tmp / "gpt" / "config.json").read_text())
    (tmp / "gpt" / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neo"}))
    (tmp / "noconfig").mkdir()
    (tmp / "noconfig" / "model.safetensors").write_bytes(b"")
    # Runs: without a checkpoint, and with a damaged best/.
    (tmp / "unfinished").mkdir()
    shutil.copy(run / "config.json", tmp / "unfinished" / "config.json")
    shutil.copytree(run, tmp / "corrupt", ignore=shutil.ignore_patterns("checkpoints", "attacks", "sweeps"))
    for f in (tmp / "corrupt" / "best").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and "meta" not in str(f):
            f.write_bytes(b"\0" * 7)
    # A run of the same model on another two-class task (its config names another file).
    shutil.copytree(run, tmp / "other_task_run", ignore=shutil.ignore_patterns("checkpoints", "attacks", "sweeps"))
    (tmp / "other.csv").write_text("text,label\n" + "".join(f"a very good plot {i},yes\nit was boring {i},no\n" for i in range(12)))
    config = json.loads((run / "config.json").read_text())
    (tmp / "other_task_run" / "config.json").write_text(json.dumps({**config, "task": f"csv:{tmp / 'other.csv'}"}))
    # A Hugging Face folder and a user's folder, which no command may change.
    shutil.copytree(model, tmp / "hf")
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("my thesis")
    return {"tmp": str(tmp), "run": str(run), "model": str(model)}


@pytest.fixture(scope="module")
def case_folder(trained_tiny_run, tiny_model_dir, tmp_path_factory):
    model, _ = tiny_model_dir("bert", num_labels=2)
    tmp = tmp_path_factory.mktemp("bad-input")
    places = _write_files(tmp, trained_tiny_run, model)
    csv = tmp / "good.csv"
    csv.write_text("text,label\n" + "".join(f"the film was good {i},pos\nthe film was bad {i},neg\n" for i in range(12)))
    exp = tmp / "tiny_experiment.py"
    exp.write_text(
        "from jaxrobust.train import default_config\n\n"
        "def get_config(arg=None):\n"
        "    c = default_config()\n"
        f"    c.task = 'csv:{csv}'\n"
        f"    c.model = {str(model)!r}\n"
        "    c.max_length, c.buckets, c.batch_size, c.eval_batch_size = 16, (16,), 8, 16\n"
        "    return c\n"
    )
    table = tmp / "table.json"
    table.write_text(json.dumps({"good": ["great"], "bad": ["boring"]}))
    return {**places, "csv": str(csv), "exp": str(exp), "table": str(table)}


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``roots`` with its size and modification time (XLA's compilation cache aside)."""
    out = {}
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() and "xla" not in p.relative_to(root).parts:
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line(name, case_folder, tmp_path, monkeypatch, capsys):
    argv, pattern = CASES[name]
    argv = [a.format(**case_folder) for a in argv]
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("JAXROBUST_CACHE", str(cache))
    monkeypatch.setattr(cli, "_enable_compilation_cache", lambda: None)  # keep this process's jax settings
    monkeypatch.chdir(case_folder["tmp"])
    roots = [Path(case_folder["tmp"]), Path(case_folder["run"]), cache]
    before = _snapshot(*roots)

    status = cli.main(argv)

    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in out + err
    assert _snapshot(*roots) == before  # nothing written, nothing removed, no half-made run or report
    assert not (Path(case_folder["tmp"]) / "run").exists()


@pytest.mark.parametrize("name", ["csv not utf-8", "epochs 0", "export into a user folder"])
def test_a_real_process_exits_2_with_one_line(name, case_folder):
    """The same cases as a user's shell sees them: ``python -m jaxrobust`` exits with status 2."""
    import subprocess
    import sys

    argv, pattern = CASES[name]
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrobust", *(a.format(**case_folder) for a in argv)],
        capture_output=True, text=True, cwd=case_folder["tmp"],
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and re.search(pattern, lines[0]), proc.stderr
