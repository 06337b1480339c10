"""RIFT on a decoder: SmolLM2-135M (registry bundle) on Rotten Tomatoes with wordnet-cf synonyms,
the decoder counterpart of rift_minilm, sized for 2 CPU cores.

Command:  make experiment EXP=rift_smollm2
          (its FT baseline on the same protocol: make experiment EXP=rift_smollm2:ft)
Hardware: 2-core x86-64 CPU build machine, no GPU.
Settings: rift_minilm's objective (w_clean 1, w_kl 10, w_mi 0.1, tau 0.2, heads 512 -> 256, 3 ASCC
steps, wordnet-cf with 8 candidates and cosine >= 0.5); RIFT's feature is the hidden state of the
last real token (the one the classifier head reads) and its frozen teacher is the pretrained
SmolLM2. One epoch over 2,000 training sentences in class-balanced batches of 16 (a RIFT step costs
about 3.4 FT steps), max length 64; dev accuracy on 400 sentences every 25 steps selects the
checkpoint. Learning rate: twice finetune_smollm2_rt's, as rift_minilm's is twice its baselines'
(RIFT's regularisers slow its cross-entropy down).
Run once (2026-12-07, 2-core AMD EPYC, by experiments/model_table.py beside the fine-tuned models):
106 steps at 19.4 s each alone (0.85 examples/s); test 79.8 % on the whole split; on the model
table's 200 attacked sentences clean 82.5 %, gradient 75.5 %, TextFooler 75.5 %. Its FT baseline
(rift_smollm2:ft, the same sentences): test 86.3 %, 90.5 / 73.5 / 69.5 % (README, model table).
"""

from jaxrobust.configs import load_config


def get_config(arg=None):
    c = load_config("finetune_smollm2_rt")
    c.objective = arg or "rift"
    c.train_subset = 2000
    if c.objective == "rift":
        c.lr *= 2
    c.eval_every_steps = 25
    c.synonyms.update(source="wordnet-cf", k=8, min_cos=0.5)
    c.ascc.steps = 3
    return c
