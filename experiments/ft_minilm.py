"""Baseline for RIFT: the protocol of experiments/rift_minilm.py with the `ft` objective, at the
learning rate chosen on dev by tuning_minilm (2e-4 of 5e-5, 1e-4, 2e-4 and 3e-4;
results/tuning_minilm.md).

Command:  make experiment EXP=ft_minilm
Hardware: 2-core x86-64 CPU build machine, no GPU.
"""

from jaxrobust.configs import load_config


def get_config(arg=None):
    c = load_config("rift_minilm:ft")
    c.lr = 2e-4  # chosen on dev (results/tuning_minilm.md)
    return c
