"""Baseline for RIFT: the protocol of experiments/rift_minilm.py with the `freelb` objective, at the
setting chosen on dev by tuning_minilm (lr 2e-4, adv_lr 0.04, init_mag 0.08: the FreeLB settings
InfoBERT trains with, of four; results/tuning_minilm.md).

Command:  make experiment EXP=freelb_minilm
Hardware: 2-core x86-64 CPU build machine, no GPU.
"""

from jaxrobust.configs import load_config


def get_config(arg=None):
    c = load_config("rift_minilm:freelb")
    c.lr = 2e-4  # chosen on dev (results/tuning_minilm.md)
    c.freelb.update(adv_lr=0.04, init_mag=0.08)
    return c
