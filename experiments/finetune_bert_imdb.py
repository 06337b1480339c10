"""Fine-tune bert-base-uncased from the Hugging Face hub on imdb (needs the hub; sized for a GPU/TPU).

Command:  python -m jaxrobust train --config experiments/finetune_bert_imdb.py --workdir runs/finetune_bert_imdb
Hardware / runtime / result: not run here (this build machine cannot reach the hub).
"""

from jaxrobust.train import default_config


def get_config(arg=None):
    c = default_config()
    c.task = "imdb"
    c.model = "bert-base-uncased"
    c.epochs = 3
    c.lr = 2e-5
    c.batch_size = 32
    c.max_length = 256
    c.buckets = (64, 128, 256)
    c.checkpoint_every_steps = 500
    c.eval_every_steps = 1000
    return c
