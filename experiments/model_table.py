"""The model table: MiniLM-L6, MPNet-base and SmolLM2-135M (a Llama-style decoder) fine-tuned on
Rotten Tomatoes, and SmolLM2 trained with RIFT, each attacked by the gradient attack and TextFooler
on the same 200 seeded test sentences; beside each, its size and its training speed.

Command:  make experiment EXP=model_table
          (one model: ARGS="--config.methods=smollm2-135m"; tabulate what exists: ARGS="--config.train=False")
Hardware: 2-core x86-64 CPU build machine, no GPU. MiniLM trains in about 6 minutes there, MPNet and
SmolLM2 in 20-40 minutes each, RIFT SmolLM2 in about 40; the attacks add a few minutes per model.
Models: each row is an experiment, reused when it was already run (runs/EXPERIMENT):
finetune_minilm_rt (the whole training split, batch 32, lr 5e-5), finetune_mpnet_rt and
finetune_smollm2_rt (6,000 sentences, batch 16; see their docstrings for their learning rates),
and SmolLM2 trained with RIFT (rift_smollm2: 2,000 sentences; its docstring) beside its
like-for-like FT baseline (rift_smollm2:ft: the same 2,000 sentences, FT's learning rate).
Attacks: the robustness study's candidates (wordnet-cf, 8 per word, cosine >= 0.5) and each
recipe's constraints, budget 20 % of the words, attack seed 0.
Outputs: runs/model_table/robustness_table.{md,json}, robustness.png, frontier.png; the cells in
results/model_table_cells/ (committed: the table outlives runs/).
"""

from jaxrobust.study import study_config

MODELS = {"minilm-l6": "finetune_minilm_rt", "mpnet-base": "finetune_mpnet_rt", "smollm2-135m": "finetune_smollm2_rt",
          "smollm2-135m-ft-2k": "rift_smollm2:ft", "smollm2-135m-rift": "rift_smollm2"}


def get_config(arg=None):
    c = study_config()
    c.title = "Models fine-tuned on Rotten Tomatoes"
    c.row_name = "model"
    c.experiments.update(MODELS)
    c.methods = tuple(MODELS)
    c.seeds = (0,)
    c.attacks = ("gradient", "textfooler")
    c.n_examples = 200
    c.machine = "2-core x86-64 CPU build machine (no GPU)"
    c.ledger = "results/model_table_cells"
    return c
