"""Fine-tune MiniLM-L6 on your own small CSV or JSON-lines file (a few hundred labelled texts).

Command:  python -m jaxrobust train --config own_data_minilm --workdir runs/mine \
              --config.task=csv:reviews.csv [--config.text_field=review --config.label_field=stars]
          then: python -m jaxrobust attack --workdir runs/mine --n 100
Hardware: 2-core x86-64 CPU build machine, no GPU.
Settings: the defaults (1 epoch at lr 5e-5) take 5 steps on 200 texts and leave a model at
p(true label) near 0.5, where an attack "succeeds" by moving 0.52 to 0.49. Here: 10 epochs at lr 1e-4
with batches of 16 and texts cut at 64 tokens; the best epoch on dev is kept. The file is split
80/10/10 (or give --config.dev_file / --config.test_file).
Runtime / result: see the README section "Your own data" (measured on a 200-sentence two-class CSV).
"""

from jaxrobust.train import default_config


def get_config(arg=None):
    c = default_config()
    c.task = "csv:data.csv"  # replaced by --config.task=csv:YOUR_FILE
    c.model = "bundle:minilm-l6"
    c.epochs = 10
    c.lr = 1e-4
    c.batch_size = 16
    c.eval_batch_size = 32
    c.max_length = 64
    c.buckets = (16, 32, 64)
    c.checkpoint_every_steps = 50
    return c
