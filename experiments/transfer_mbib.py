"""The transfer study in the paper's own setting (Turbal et al. 2024), for users with the Hugging Face
hub and a GPU: MBIB hate speech, political bias and gender bias (mediabiasgroup/mbib-base), every
ordered pair; bert-base-uncased, roberta-base, gpt2, google/gemma-2b and microsoft/phi-2 by hub name;
AdamW lr 2e-5, batch 16, weight decay 0.02, max length 256, 2 source epochs and 4 target epochs, the
best checkpoint on dev loss, seeds 1, 42 and 1234; the A2T-like gradient attack, TextFooler and
BERT-Attack (masked LM bert-base-uncased, 4 candidates a word, 20 % of the words), each with a
query budget of 80, on 1,024 test examples.

Command:  make experiment EXP=transfer_mbib
Hardware: one GPU (the base-sized models) up to several (Gemma, Phi); hours per model.
Offline (no hub), it stops in one line naming transfer_study, the same protocol on the registry bundles.
The pipeline is exercised on tiny local files shaped like the MBIB splits with tiny random models
in tests/test_transfer.py.
"""

from jaxrobust.transfer import transfer_config


def get_config(arg=None):
    c = transfer_config()
    c.tasks = ("mbib_hate_speech", "mbib_political_bias", "mbib_gender_bias")
    c.models.update(bert="bert-base-uncased", roberta="roberta-base", gpt2="gpt2", gemma="google/gemma-2b", phi="microsoft/phi-2")
    c.model_names = ("bert", "roberta", "gpt2", "gemma", "phi")
    c.seeds = (1, 42, 1234)
    c.source_train, c.target_train, c.eval_subset = 0, 200, 0  # 0: the whole source train split and dev split
    c.training.update(lr=2e-5, batch_size=16, weight_decay=0.02, max_length=256, buckets=(64, 128, 256), select_on="loss")
    c.attacks = ("gradient", "textfooler", "bertattack")
    c.mlm = "bert-base-uncased"
    c.n_examples = 1024
    c.query_budget = 80
    c.machine = "a GPU machine with the Hugging Face hub"
    c.offline_alternative = "transfer_study"
    return c
