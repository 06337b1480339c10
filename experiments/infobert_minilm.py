"""Baseline for RIFT: the protocol of experiments/rift_minilm.py with the `infobert` objective
(FreeLB with the information bottleneck and the anchored-word InfoNCE; the authors' ANLI settings,
config.infobert).

Command:  make experiment EXP=infobert_minilm
Hardware: 2-core x86-64 CPU build machine, no GPU.
Measured (seed 0, 2026-12-06, 2-core AMD EPYC): 126 steps in 9 min 41 s for the whole command
(514 s of training steps, 8.6 examples/s), dev 78.6 %, test 82.0 % (ft_minilm seed 0: 82.0 %).
Over the epoch the bottleneck term stayed at 92-94 (the embedding layer's output is LayerNorm-ed
and lr 1e-4 moves it little in 126 steps) and the anchored-word InfoNCE near 0 (the critic starts
from random weights); its robustness is not measured yet.
"""

from jaxrobust.configs import load_config


def get_config(arg=None):
    return load_config("rift_minilm:infobert")
