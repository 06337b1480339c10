"""Checkpoints on orbax ``CheckpointManager``: the training state, and the best-on-dev model.

A training checkpoint holds the model parameters, the optimizer state and a small JSON of host-side
progress (step, best dev score so far). Restoring goes against an abstract target built from the
live model, so shapes, dtypes and shardings are checked and kept.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx

from jaxrobust.errors import JaxRobustError


def _state(name: str, obj) -> nnx.State:
    # Models contribute their parameters only: their RNG streams are reseeded every step, and typed
    # PRNG keys are not checkpointable. Everything else (optimizer step, moments) is saved whole.
    return nnx.state(obj, nnx.Param if name == "model" else ...)


def _abstract(tree):
    # A model built abstractly (nnx.eval_shape) has no sharding yet: it is restored onto the default device.
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None) or default), tree)


class Checkpoints:
    """Save/restore ``{name: nnx object}`` pytrees plus a JSON ``meta`` dict under ``directory``."""

    def __init__(self, directory: str | Path, keep: int, save_every: int = 1):
        self.directory = Path(directory).absolute()
        # Synchronous saves: every save is waited for anyway (a killed run must find it complete), and
        # orbax's async path logs "Waiting for previous save to complete" for each of those waits.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, save_interval_steps=save_every, create=True, enable_async_checkpointing=False
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def delete(self, step: int) -> None:
        self.manager.delete(step)

    def save(self, step: int, objects: dict[str, Any], meta: dict, force: bool = False) -> None:
        if step in self.manager.all_steps():  # a resumed run replaying a step: keep one copy
            self.delete(step)
        state = {name: nnx.to_pure_dict(_state(name, obj)) for name, obj in objects.items()}
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=force,
        )
        self.manager.wait_until_finished()

    def restore(self, step: int, objects: dict[str, Any]) -> dict:
        """Load ``step`` into ``objects`` (the same names as saved) in place; return its ``meta``."""
        states = {name: _state(name, obj) for name, obj in objects.items()}
        target = {name: _abstract(nnx.to_pure_dict(s)) for name, s in states.items()}
        try:
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
            )
        except Exception as e:  # orbax raises many types for damaged or foreign checkpoints
            msg = textwrap.shorten((str(e).strip().splitlines() or [type(e).__name__])[0], 200, placeholder=" ...")
            raise JaxRobustError(
                f"checkpoint {self.directory / str(step)} is corrupt or does not fit this model: {msg}"
            ) from e
        for name, obj in objects.items():
            nnx.replace_by_pure_dict(states[name], restored["state"][name])
            nnx.update(obj, states[name])
        return dict(restored["meta"])

    def close(self) -> None:
        self.manager.close()
