"""Training objectives: each a pure loss ``(model, batch, rng, config) -> (loss, metrics)``.

``batch`` holds ``input_ids, attention_mask, token_type_ids: [B, L]`` and ``labels, weights: [B]``
(weight 0 marks padding examples); objectives that substitute words also get ``slot_ids,
slot_mask: [B, L, S]`` (:mod:`~jaxrobust.objectives.substitutions`). ``config`` is the run's
ConfigDict, read at trace time only.

============  ===============================================================================
``ft``        cross-entropy
``adv``       CE on clean texts and gradient-attacked versions of a share of them, A2T-style (:mod:`.adv`)
``freelb``    K-step PGD on the word embeddings in an L2 ball (:mod:`.freelb`)
``ascc``      CE + beta · KL to the ASCC convex-combination adversary (:mod:`.ascc`)
``rift``      CE + KL to the ASCC adversary + conditional InfoNCE to a frozen teacher (:mod:`.rift`)
``infobert``  FreeLB + an information bottleneck on the token features + anchored-word InfoNCE (:mod:`.infobert`)
============  ===============================================================================
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from jaxrobust.errors import JaxRobustError
from jaxrobust.objectives.adv import adv_loss
from jaxrobust.objectives.ascc import ascc_loss
from jaxrobust.objectives.freelb import freelb_loss
from jaxrobust.objectives.ft import ft_loss
from jaxrobust.objectives.infobert import InfoBertModel, infobert_loss
from jaxrobust.objectives.rift import RiftModel, rift_loss, teacher_features


@dataclasses.dataclass(frozen=True)
class Objective:
    loss: Callable
    # (classifier, num_classes, config) -> the module training updates (None: the classifier);
    # it exposes the classifier as ``.classifier``.
    wrap: Callable | None = None
    substitutions: bool = False  # batches carry synonym slots
    balanced: bool = False  # class-balanced batches
    # (wrapped module, batch) -> {key: [B, ...]}: inputs that depend only on the clean tokens and on
    # weights training never changes, so training computes them once per example instead of in every
    # step and adds them to the batches (RIFT: the frozen teacher's features).
    fixed_inputs: Callable | None = None


def _rift_model(classifier, num_classes: int, config):
    return RiftModel(classifier, classifier, num_classes, config.rift, seed=config.seed)


def _infobert_model(classifier, num_classes: int, config):
    return InfoBertModel(classifier, config.infobert, seed=config.seed)


OBJECTIVES: dict[str, Objective] = {
    "ft": Objective(ft_loss),
    "adv": Objective(adv_loss, substitutions=True),
    "freelb": Objective(freelb_loss),
    "ascc": Objective(ascc_loss, substitutions=True),
    "rift": Objective(rift_loss, wrap=_rift_model, substitutions=True, balanced=True, fixed_inputs=teacher_features),
    "infobert": Objective(infobert_loss, wrap=_infobert_model),
}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise JaxRobustError(f"unknown objective {name!r}; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
