"""Fine-tune bert-base-uncased from the Hugging Face hub on sst2 (needs the hub; sized for a GPU/TPU).

Command:  python -m jaxrobust train --config experiments/finetune_bert_sst2.py --workdir runs/finetune_bert_sst2
Hardware / runtime / result: not run here (this build machine cannot reach the hub).
"""

from jaxrobust.train import default_config


def get_config(arg=None):
    c = default_config()
    c.task = "sst2"
    c.model = "bert-base-uncased"
    c.epochs = 3
    c.lr = 2e-5
    c.batch_size = 32
    c.max_length = 64
    c.buckets = (32, 64)
    c.checkpoint_every_steps = 500
    c.eval_every_steps = 1000
    return c
