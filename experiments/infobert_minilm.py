"""Baseline for RIFT: the protocol of experiments/rift_minilm.py with the `infobert` objective
(FreeLB with the information bottleneck and the anchored-word InfoNCE; the authors' ANLI settings,
config.infobert).

Command:  make experiment EXP=infobert_minilm
Hardware: 2-core x86-64 CPU build machine, no GPU.
"""

from jaxrobust.configs import load_config


def get_config(arg=None):
    return load_config("rift_minilm:infobert")
