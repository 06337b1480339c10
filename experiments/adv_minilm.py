"""Baseline for RIFT: the protocol of experiments/rift_minilm.py with the `adv` objective (A2T-style
augmentation: half of each batch attacked by the gradient attack inside the training step).

Command:  make experiment EXP=adv_minilm
Hardware: 2-core x86-64 CPU build machine, no GPU.
"""

from jaxrobust.configs import load_config


def get_config(arg=None):
    return load_config("rift_minilm:adv")
