"""RIFT in the paper's setting: bert-base-uncased on IMDB from the Hugging Face hub (METHODS.md
section 1; Dong et al. 2021), sized for a GPU or TPU.

Command:  make experiment EXP=rift_bert
          (Jia et al.'s counter-fitted neighbour table: ARGS="--config.synonyms=counterfitted:PATH")
Settings: max length 300, batch 32, AdamW 2e-5 with 2 epochs of warm-up, 20 epochs, w_clean 1,
w_kl 10, w_mi 0.1, tau 0.2, 10 ASCC steps, wordnet-cf synonyms by default; the best epoch on the dev
split (carved from IMDB's train split) is the one evaluated on test. Differences from the
reference code: model selection on dev, not on test; weight decay on every matrix, not on the
heads only; the classifier head is the checkpoint's (a fresh linear layer on the pooled output).
Hardware / runtime / result: not run here (this build machine cannot reach the hub, and one epoch
is about 25k examples at the RIFT cost of ~7 fine-tuning steps each). Without the hub it stops in
one line naming rift_minilm, the same method on the registry bundles.
"""

from jaxrobust.train import default_config


def get_config(arg=None):
    c = default_config()
    c.task = "imdb"
    c.model = "bert-base-uncased"
    c.objective = "rift"
    c.offline_alternative = "rift_minilm"
    c.epochs = 20
    c.lr = 2e-5
    c.warmup_ratio = 0.1  # 2 of 20 epochs
    c.batch_size = 32
    c.max_length = 300
    c.buckets = (128, 256, 304)  # 304: 300 rounded up to a multiple of 8
    c.checkpoint_every_steps = 200
    c.synonyms.update(source="wordnet-cf", k=8, min_cos=0.5)
    c.ascc.steps = 10
    c.rift.update(w_clean=1.0, w_kl=10.0, w_mi=0.1, tau=0.2)
    return c
