"""Quickstart: standard fine-tuning (FT) vs RIFT on MiniLM-L6 / Rotten Tomatoes, both attacked by
the gradient attack and TextFooler on the same 200 seeded test sentences; prints the table, with
the paths of its plot and of the adversarial examples.

Command:  make experiment            (= python -m jaxrobust experiment --config experiments/quickstart.py --workdir runs/quickstart)
          one side alone: python -m jaxrobust train --config experiments/quickstart.py:ft --workdir runs/qs_ft
Hardware: 2-core x86-64 CPU build machine, no GPU.
Settings, chosen on 200 seeded dev sentences (experiments/tuning_quickstart.py, results/
tuning_quickstart.md; 2026-12-06, 2-core AMD EPYC): both train on the same 1,200-sentence subset;
FT for 2 epochs at lr 2e-4 (of lr 1e-4, 5e-5, 2e-4 and 3 epochs); RIFT (1 ASCC step, lr 1e-4) for
96 class-balanced steps of 32, 3 epochs (of 16, 64, and 96 at lr 1e-4 or 2e-4). On dev the chosen
RIFT is level with the chosen FT under attack (gradient 66.0 vs 66.0, TextFooler 62.5 vs 62.0) and
3 points lower clean (77.5 vs 80.5): the goal of RIFT ahead by 8 points under each attack is not
reached on dev at this size.
Runtime / result (2026-12-06, `fresh-check --experiment` from a clean clone on the 2-core AMD EPYC
machine, venv installed): 601 s wall. On the 200 test sentences: FT test 79.8 %, clean 77.0 %, 58.0 %
under the gradient attack (wordnet-cf candidates, A2T's part of speech and similarity >= 0.9), 55.0 %
under TextFooler; RIFT test 78.8 %, clean 78.0 %, 66.5 %, 64.5 % (+8.5 and +9.5 under attack); on the
140 sentences both classify correctly 77.1 % vs 86.4 % (gradient) and 75.0 % vs 83.6 % (TextFooler).
Dev and test disagree by that much with one seed and 200 sentences; whenever RIFT is not ahead under
an attack, the table's caveat says so and points to the study that measures it.
"""

from jaxrobust.errors import JaxRobustError
from jaxrobust.study import study_config
from jaxrobust.train import default_config


def get_config(arg=None):
    if arg is None:
        c = study_config()
        c.experiments.update(ft="quickstart:ft", rift="quickstart:rift")
        c.methods, c.seeds, c.attacks = ("ft", "rift"), (0,), ("gradient", "textfooler")
        c.n_examples = 200
        c.machine = "2-core x86-64 CPU build machine (no GPU)"
        c.caveat = (
            "At this size (1,200 training sentences, one seed, 200 sentences) the comparison is noisy: with settings "
            "chosen on 200 dev sentences (results/tuning_quickstart.md) RIFT was level with FT under attack on dev and 3 "
            "points lower clean, and 8.5 and 9.5 points ahead on the test sentences of the clean-clone run. The comparison that measures RIFT (FT, RIFT and four baselines x 3 seeds, 4,000 training sentences, "
            "four attacks) is `make experiment EXP=robustness_minilm`; its committed table, results/robustness_minilm.md, "
            "has RIFT 3 points ahead of FT under the gradient and TextFooler attacks and 10-15 under PWWS and the "
            "genetic attack, for 4 points of clean accuracy."
        )
        return c
    c = default_config()
    c.task = "rotten_tomatoes"
    c.model = "bundle:minilm-l6"
    c.train_subset = 1200
    c.eval_subset = 400
    c.epochs = 2
    c.lr = 2e-4  # chosen on dev (docstring)
    c.batch_size = 32
    c.max_length = 64
    c.buckets = (32, 64)
    c.checkpoint_every_steps = 25
    if arg == "rift":
        c.objective = "rift"
        c.lr = 1e-4
        c.epochs = 3
        c.max_steps = 96  # RIFT's class-balanced epoch of the subset is 33 steps
        c.eval_every_steps = 16
        c.ascc.steps = 1
    elif arg != "ft":
        raise JaxRobustError(f"quickstart takes no argument, 'ft' or 'rift'; got {arg!r}")
    return c
