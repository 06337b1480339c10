"""Result files: atomic JSON writes and the metrics log (written from process 0 only)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` so that ``path`` is either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file gets the user's umask like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


class MetricsLog:
    """``metrics.jsonl``: one JSON object per logged step, appended as training goes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.enabled = jax.process_index() == 0

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step``: a resumed run replays those steps and logs them again."""
        if not (self.enabled and self.path.exists()):
            return
        keep = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def write(self, step: int, **metrics: float) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, **metrics}) + "\n")
