"""Folders jaxrobust writes, and the rule that keeps a user's files safe: only what jaxrobust wrote
is ever replaced or removed.

* A **run directory** (``train --workdir``) carries the marker file ``.jaxrobust-run``. ``--overwrite``
  removes only the entries a run writes (``RUN_ENTRIES``) from a folder jaxrobust recognises as a run,
  and leaves anything else there untouched.
* An **export** (``export --out``) carries ``jaxrobust-export.json``, the list of the files it wrote.
  It is written into a temporary folder beside the target and renamed into place, so the target is
  either the old folder or the complete new one. Only an empty folder or, with ``force``, a previous
  export holding nothing but its own files is replaced.

Written files and folders get the user's umask (``tempfile.mkdtemp`` alone would leave them 0700).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from jaxrobust.errors import JaxRobustError

RUN_MARKER = ".jaxrobust-run"
# Everything a run directory may hold that jaxrobust wrote: what --overwrite may remove.
RUN_ENTRIES = (RUN_MARKER, "config.json", "split.json", "metrics.jsonl", "results.json", "checkpoints", "best", "attacks", "sweeps")
EXPORT_MARKER = "jaxrobust-export.json"


# --- run directories ------------------------------------------------------------------------------


def _is_run_config(path: Path) -> bool:
    """Whether ``path`` is a run config jaxrobust wrote (runs from before the marker have no marker)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and {"task", "model", "objective", "seed", "buckets"} <= saved.keys()


def is_run_dir(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / RUN_MARKER).is_file() or _is_run_config(path / "config.json")


def claim_run_dir(path: str | os.PathLike) -> None:
    """Refuse a folder whose run files jaxrobust did not write, else create it and mark it as a run."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise JaxRobustError(f"--workdir {path} is a file; give a folder")
    if path.is_dir() and not is_run_dir(path):
        theirs = sorted(e for e in RUN_ENTRIES if (path / e).exists())
        if theirs:
            raise JaxRobustError(
                f"{path} is not a jaxrobust run but holds {', '.join(theirs)}; choose another --workdir"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / RUN_MARKER).touch()
    except OSError as e:
        raise JaxRobustError(f"cannot write the run directory {path}: {e.strerror}") from None


OUTPUT_MARKER = ".jaxrobust-output"
REPORT_FILES = ("results.json", "examples.jsonl", "examples.html", "textattack.csv")
SWEEP_FILES = ("sweep.json", "sweep.md", "robust_accuracy_vs_budget.png")


def check_output_dir(path: str | os.PathLike, files: tuple[str, ...]) -> None:
    """Refuse an ``--out`` folder that is a file or holds any of ``files`` (what an attack report or
    a sweep writes there) that jaxrobust did not write. Writes nothing. A folder inside a run
    (``RUN/attacks/NAME``, ``RUN/sweeps/NAME``) is the run's own."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise JaxRobustError(f"--out {path} is a file; give a folder")
    ours = (path / OUTPUT_MARKER).is_file() or is_run_dir(path.absolute().parent.parent)
    theirs = sorted(f for f in files if (path / f).exists())
    if theirs and not ours:
        raise JaxRobustError(f"{path} holds {', '.join(theirs)} that jaxrobust did not write; choose another --out")


def claim_output_dir(path: str | os.PathLike, files: tuple[str, ...]) -> None:
    """:func:`check_output_dir`, then create the folder and mark it as jaxrobust's."""
    check_output_dir(path, files)
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / OUTPUT_MARKER).touch()
    except OSError as e:
        raise JaxRobustError(f"cannot write the output folder {path}: {e.strerror}") from None


def clear_run_dir(path: str | os.PathLike, entries: tuple[str, ...] = RUN_ENTRIES) -> None:
    """Remove ``entries`` (of :data:`RUN_ENTRIES`; all of them for ``--overwrite``) of the run in
    ``path``; a folder that is not a run is refused, and a link is removed, never followed."""
    path = Path(path)
    if not path.is_dir():
        return
    if not is_run_dir(path):
        raise JaxRobustError(f"{path} is not a jaxrobust run directory; --overwrite removes only runs jaxrobust wrote")
    assert set(entries) <= set(RUN_ENTRIES), entries
    for entry in entries:
        target = path / entry
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


# --- exports --------------------------------------------------------------------------------------


def check_export_target(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that replacing would lose a user's files (see the module docstring)."""
    if out.exists() and not out.is_dir():
        raise JaxRobustError(f"--out {out} is a file; give a new or empty folder")
    if out == Path.cwd().resolve():
        raise JaxRobustError(f"--out {out} is the current folder; give a new folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    marker = out / EXPORT_MARKER
    if not marker.is_file():
        raise JaxRobustError(
            f"--out {out} is not empty and is not a jaxrobust export; choose a new or empty folder"
        )
    try:
        written = set(json.loads(marker.read_text())["files"]) | {EXPORT_MARKER}
    except (OSError, ValueError, KeyError, TypeError):
        raise JaxRobustError(f"{marker} is damaged; choose a new or empty folder for --out") from None
    present = {str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir()}
    foreign = sorted(present - written)
    if foreign:
        raise JaxRobustError(
            f"--out {out} holds files the export did not write ({', '.join(foreign[:3])}); choose another folder"
        )
    if not force:
        raise JaxRobustError(f"--out {out} holds a previous export; use --force to replace it, or choose another folder")


def write_export(out: str | os.PathLike, write: Callable[[Path], None], force: bool = False, **about) -> Path:
    """Call ``write(folder)`` on a temporary folder beside ``out``, then rename it into place.

    ``about`` goes into the marker file beside the list of files written.
    """
    out = Path(out).expanduser().resolve()
    check_export_target(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise JaxRobustError(f"cannot write to {out.parent}: {e.strerror}") from None
    try:
        write(staging)
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if not p.is_dir())
        (staging / EXPORT_MARKER).write_text(json.dumps({"exported_by": "jaxrobust", **about, "files": files}, indent=2) + "\n")
        apply_umask(staging)
        _replace_dir(staging, out)
    except OSError as e:
        raise JaxRobustError(f"cannot write the export {out}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _replace_dir(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; an existing ``out`` (empty, or a previous export: checked by the
    caller) is moved aside first and removed only once ``new`` is in place, else put back."""
    if not out.exists():
        os.replace(new, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, aside / "export")
    try:
        os.replace(new, out)
    except OSError:
        os.replace(aside / "export", out)
        aside.rmdir()
        raise
    shutil.rmtree(aside)


def apply_umask(root: Path) -> None:
    """Give ``root`` and everything under it the modes a plain ``open``/``mkdir`` would have."""
    umask = os.umask(0)
    os.umask(umask)
    for path in (root, *root.rglob("*")):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
