"""Fine-tune MiniLM-L6 (registry bundle) on the full Rotten Tomatoes train split.

Command:  make experiment EXP=finetune_minilm_rt
          (= python -m jaxrobust train --config experiments/finetune_minilm_rt.py --workdir runs/finetune_minilm_rt)
Hardware: 2-core x86-64 CPU build machine, no GPU.
Settings: the PyTorch reference point of RESOURCES.md: 1 epoch, lr 5e-5, batch 32, max length 64, AdamW.
Runtime / result (2026-12-01, 2-core Intel Xeon, idle, assets cached; run by `make bench`): 333 s in
train steps, 320 steps, 32.4 examples/s after compilation; best dev accuracy 0.8103, test accuracy
0.8314, test macro-F1 0.8282 on the 1,275 test sentences of the de-duplicated split. The PyTorch
comparison is `make bench` (bench/results/finetune_vs_pytorch.md).
"""

from jaxrobust.train import default_config


def get_config(arg=None):
    c = default_config()
    c.task = "rotten_tomatoes"
    c.model = "bundle:minilm-l6"
    c.epochs = 1
    c.lr = 5e-5
    c.batch_size = 32
    c.max_length = 64
    c.buckets = (32, 64)
    c.checkpoint_every_steps = 50
    c.eval_every_steps = 100
    return c
