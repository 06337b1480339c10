"""A private virtualenv with TextAttack 0.3.11, the peer our word-substitution attacks are compared with.

TextAttack needs PyTorch and pins of its own that must stay out of the project's venv, so it lives in
``$JAXROBUST_CACHE/venvs/textattack-0.3.11`` (built once; a stamp file written last marks it complete,
so an install that was killed is redone from scratch). Everything it needs runs offline:

* ``torch==2.13.0`` is installed first, from the local CPU wheel that pip's find-links provide, then
  ``textattack==0.3.11 flair==0.15.1 transformers==4.57.6 safetensors sentence-transformers==5.1.2``
  (the flair and transformers pins are needed: without them pip back-tracks through old flair
  releases for a quarter of an hour; sentence-transformers runs the SBERT similarity constraint);
* ``import textattack`` calls ``nltk.download()``: the runner makes it a no-op and reads WordNet and the
  English stop words from an ``NLTK_DATA`` directory written by
  :func:`jaxrobust.attacks.wordnet.prepare_nltk_data`;
* the Hugging Face hub is switched off (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``), and TextAttack's
  and the hub's caches point into our cache.

Usage from the project venv (repository root on ``sys.path``; from a script in ``bench/``,
``from textattack_env import ...``)::

    from bench.textattack_env import ensure_textattack_env, run_textattack
    env = ensure_textattack_env()            # {"python": ..., "env": {...}, ...}
    result = run_textattack(["--model", DIR, "--examples", F, "--candidates", C, "--recipe", "a2t_like",
                             "--budget", "0.2", "--max-length", "64"])

or ``python bench/textattack_env.py`` to build the venv and print what it returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jaxrobust.assets import cache_dir

TEXTATTACK_VERSION = "0.3.11"
TORCH_PIN = "torch==2.13.0"
# sentence-transformers runs the SBERT similarity constraint; 5.1.2 works with transformers 4.57 (6.x needs 5).
PACKAGE_PINS = (f"textattack=={TEXTATTACK_VERSION}", "flair==0.15.1", "transformers==4.57.6", "safetensors",
                "sentence-transformers==5.1.2")
RUNNER = Path(__file__).resolve().with_name("textattack_runner.py")
_STAMP = ".jaxrobust-complete"


def _log(message: str) -> None:
    print(f"[textattack-env] {message}", file=sys.stderr, flush=True)


def venv_dir() -> Path:
    return cache_dir() / "venvs" / f"textattack-{TEXTATTACK_VERSION}"


def _stamp_content() -> dict:
    return {"torch": TORCH_PIN, "packages": list(PACKAGE_PINS), "python": sys.version.split()[0]}


@contextlib.contextmanager
def _locked(path: Path):
    """Serialise concurrent builders of the same venv (another process may be installing it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_complete(venv: Path) -> bool:
    stamp = venv / _STAMP
    if not stamp.is_file() or not (venv / "bin" / "python").exists():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError:
        return False
    return all(recorded.get(k) == v for k, v in _stamp_content().items())


def _pip(python: Path, args: list[str], log: Path) -> None:
    command = [str(python), "-m", "pip", "install", "--no-input", *args]
    _log("$ " + " ".join(command[1:]) + f"   (log: {log})")
    with open(log, "a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"pip install failed (exit {done.returncode}); last lines of {log}:\n{tail}")


def _build(venv: Path, env: dict[str, str]) -> float:
    start = time.monotonic()
    if venv.exists():
        _log(f"removing incomplete venv {venv}")
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _log(f"creating venv {venv}")
    # The base interpreter (not the project venv's), so nothing of the project's venv leaks in.
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    log = venv / "install.log"
    _pip(python, [TORCH_PIN], log)
    _pip(python, list(PACKAGE_PINS), log)
    _log("checking that textattack imports offline")
    subprocess.run([str(python), "-c", _IMPORT_CHECK], env=_child_env(env), check=True)
    seconds = time.monotonic() - start
    (venv / _STAMP).write_text(json.dumps({**_stamp_content(), "install_seconds": round(seconds, 1)}) + "\n")
    _log(f"venv complete in {seconds:.0f} s")
    return seconds


# What the runner does before importing textattack, and the versions it must find.
_IMPORT_CHECK = (
    "import nltk; nltk.download = lambda *a, **k: True; "
    "import textattack, torch, transformers; from importlib.metadata import version; "
    f"assert version('textattack') == '{TEXTATTACK_VERSION}', version('textattack'); "
    f"assert torch.__version__.split('+')[0] == '{TORCH_PIN.split('==')[1]}', torch.__version__; "
    "print('textattack', version('textattack'), 'torch', torch.__version__, 'transformers', transformers.__version__)"
)


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a process in TextAttack's venv: ours, plus ``extra``, minus the project venv."""
    env = {**os.environ, **extra}
    for var in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(var, None)
    return env


def _nltk_data() -> Path:
    from jaxrobust.attacks.wordnet import prepare_nltk_data

    return Path(prepare_nltk_data(cache_dir() / "nltk_data"))


def ensure_textattack_env(threads: int | None = None) -> dict:
    """Build (once) TextAttack's venv and offline data; return how to run the runner in it.

    Returns ``{"python", "venv", "env", "install_seconds", "nltk_data"}``: ``env`` holds the variables
    to add to the environment (offline switches, caches, NLTK_DATA, thread counts); ``install_seconds``
    is what building the venv took (recorded in its stamp, so also on later calls).
    """
    venv = venv_dir()
    threads = threads or os.cpu_count() or 1
    root = cache_dir()
    with _locked(venv.parent / f".{venv.name}.lock"):
        nltk_data = _nltk_data()
        _log(f"NLTK_DATA {nltk_data}")
        for sub in ("textattack", "hf"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        env = {
            "NLTK_DATA": str(nltk_data),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            # textattack itself sets HF_HOME (and XDG_CACHE_HOME) to TA_CACHE_DIR when it is set.
            "TA_CACHE_DIR": str(root / "textattack"),
            "HF_HOME": str(root / "hf"),
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            "PYTHONNOUSERSITE": "1",
        }
        if _is_complete(venv):
            _log(f"using {venv}")
        else:
            _build(venv, env)
    stamp = json.loads((venv / _STAMP).read_text())
    return {
        "python": str(venv / "bin" / "python"),
        "venv": str(venv),
        "env": env,
        "install_seconds": stamp.get("install_seconds"),
        "nltk_data": str(nltk_data),
        "threads": threads,
    }


def _arg(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def run_textattack(args: list[str], env_info: dict | None = None, timeout: float | None = None) -> dict:
    """Run ``bench/textattack_runner.py ARGS`` in TextAttack's venv; return the JSON it writes.

    ``--out`` is added (a temporary file) when ARGS lack it; ``--threads`` in ARGS also sets the
    BLAS/OpenMP thread counts of the child.
    """
    args = [str(a) for a in args]
    threads = _arg(args, "--threads")
    info = env_info or ensure_textattack_env(int(threads) if threads else None)
    env = _child_env(info["env"])
    if threads:
        env.update({var: threads for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    with tempfile.TemporaryDirectory(prefix="textattack-run-") as tmp:
        out = _arg(args, "--out")
        if out is None:
            out = str(Path(tmp) / "out.json")
            args += ["--out", out]
        command = [info["python"], str(RUNNER), *args]
        _log("$ " + " ".join(command[1:]))
        done = subprocess.run(command, env=env, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"textattack runner failed with exit {done.returncode}")
        return json.loads(Path(out).read_text())


if __name__ == "__main__":
    print(json.dumps(ensure_textattack_env(), indent=2))
