"""A user's files survive every command that writes a folder: export, train --overwrite."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from jaxrobust.errors import JaxRobustError
from jaxrobust.models import export_classifier, load_classifier
from jaxrobust.outputs import EXPORT_MARKER, RUN_MARKER
from jaxrobust.train import train_and_evaluate


@pytest.fixture
def loaded(tiny_model_dir):
    directory, _ = tiny_model_dir("bert", num_labels=2)
    return load_classifier(str(directory))


def _user_files(folder):
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("my thesis")
    (folder / "sub" / "data.csv").write_text("a,b\n")


def _assert_user_files(folder):
    assert (folder / "thesis.tex").read_text() == "my thesis"
    assert (folder / "sub" / "data.csv").read_text() == "a,b\n"


def test_export_refuses_a_folder_with_user_files(loaded, tmp_path):
    _user_files(tmp_path / "out")
    for force in (False, True):
        with pytest.raises(JaxRobustError, match="is not empty and is not a jaxrobust export; choose a new or empty folder"):
            export_classifier(loaded, tmp_path / "out", force=force)
    _assert_user_files(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left beside it


def test_export_refuses_the_current_folder_a_file_and_an_unwritable_path(loaded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("keep")
    with pytest.raises(JaxRobustError, match="is the current folder"):
        export_classifier(loaded, ".")
    with pytest.raises(JaxRobustError, match="keep.txt is a file; give a new or empty folder"):
        export_classifier(loaded, "keep.txt")
    with pytest.raises(JaxRobustError, match="cannot write to .*keep.txt"):
        export_classifier(loaded, "keep.txt/model")
    assert (tmp_path / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_export_replaces_only_its_own_previous_export_with_force(loaded, tmp_path):
    out = tmp_path / "out"
    out.mkdir()  # an empty folder is fine
    export_classifier(loaded, out, run="r1")
    marker = json.loads((out / EXPORT_MARKER).read_text())
    assert marker["run"] == "r1" and "model.safetensors" in marker["files"] and "config.json" in marker["files"]
    with pytest.raises(JaxRobustError, match="holds a previous export; use --force"):
        export_classifier(loaded, out, run="r2")
    export_classifier(loaded, out, force=True, run="r2")
    assert json.loads((out / EXPORT_MARKER).read_text())["run"] == "r2"
    # A file the user put into the export is never replaced, even with force.
    (out / "notes.txt").write_text("mine")
    with pytest.raises(JaxRobustError, match=r"holds files the export did not write \(notes.txt\)"):
        export_classifier(loaded, out, force=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_export_uses_the_umask(loaded, tmp_path):
    old = os.umask(0o027)
    try:
        out = export_classifier(loaded, tmp_path / "out")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o750
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o640}


def test_train_never_removes_a_folder_that_is_not_its_run(loaded, tiny_config, tmp_path):
    export = export_classifier(loaded, tmp_path / "hf")  # a Hugging Face folder: config.json, weights, tokenizer
    before = {p.name: p.read_bytes() for p in export.iterdir()}
    for overwrite in (False, True):
        with pytest.raises(JaxRobustError, match="holds a config.json that is not a jaxrobust run; choose another --workdir"):
            train_and_evaluate(tiny_config, export, overwrite=overwrite)
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before


def test_overwrite_removes_only_what_the_run_wrote(tiny_config, tmp_path):
    run = tmp_path / "run"
    tiny_config.max_steps = 1
    train_and_evaluate(tiny_config, run)
    assert (run / RUN_MARKER).is_file()
    _user_files(run)
    tiny_config.lr = 1e-3
    with pytest.raises(JaxRobustError, match="different config; use --overwrite"):
        train_and_evaluate(tiny_config, run)
    shutil.rmtree(run / "checkpoints")  # as a study does once a run has finished: the run is still there to lose
    with pytest.raises(JaxRobustError, match="different config; use --overwrite"):
        train_and_evaluate(tiny_config, run)
    results = train_and_evaluate(tiny_config, run, overwrite=True)
    assert json.loads((run / "config.json").read_text())["lr"] == 1e-3 and results["total_steps"] == 1
    _assert_user_files(run)
    # Every step of a one-step run compiled: there is no steady-state rate to report.
    assert results["examples_per_second"] is None
