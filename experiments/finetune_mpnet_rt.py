"""Fine-tune MPNet-base (registry bundle, 110M parameters) on Rotten Tomatoes, on the protocol of
finetune_smollm2_rt so that the two base-sized models of the model table see the same data.

Command:  make experiment EXP=finetune_mpnet_rt
Hardware: 2-core x86-64 CPU build machine, no GPU.
Settings: one epoch over 6,000 training sentences, batch 16, max length 64 (buckets 32/64), AdamW at
lr 2e-5 with 10 % warm-up (the usual choice for base-sized encoders, not tuned here); dev accuracy
on 400 sentences every 75 steps selects the checkpoint.
Status (2026-12-06): not run yet; experiments/model_table.py runs it.
"""

from jaxrobust.configs import load_config


def get_config(arg=None):
    c = load_config("finetune_smollm2_rt")
    c.model = "bundle:mpnet-base"
    c.lr = 2e-5
    return c
