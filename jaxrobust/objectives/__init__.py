"""Training objectives: each a pure loss ``(model, batch, rng, config) -> (loss, metrics)``.

``batch`` holds ``input_ids, attention_mask, token_type_ids: [B, L]`` and ``labels, weights: [B]``
(weight 0 marks padding examples); ``config`` is the run's ConfigDict, read at trace time only.
"""

from __future__ import annotations

from typing import Callable

from jaxrobust.errors import JaxRobustError
from jaxrobust.objectives.ft import ft_loss

OBJECTIVES: dict[str, Callable] = {"ft": ft_loss}


def get_objective(name: str) -> Callable:
    if name not in OBJECTIVES:
        raise JaxRobustError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
