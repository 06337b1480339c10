"""The robustness study on the registry bundles: FT, ADV, FreeLB, ASCC, InfoBERT and RIFT on MiniLM-L6 /
Rotten Tomatoes (each method's *_minilm experiment), 3 seeds, attacked by the gradient,
TextFooler-style, PWWS and genetic attacks on the same seeded 500 test examples, every attack
searching the substitution set the robust objectives train with (wordnet-cf, 8 candidates, cosine
>= 0.5), as in the RIFT and ASCC papers, under each attack's recipe constraints (gradient: part of
speech and whole-text similarity >= 0.9; TextFooler-style: part of speech and window similarity;
PWWS and genetic: none).

Command:  make experiment EXP=robustness_minilm
          (fill it in parts: ARGS="--config.methods=ft,rift --config.seeds=0"; tabulate only what
          exists: ARGS="--config.train=False")
Hardware: 2-core x86-64 CPU build machine, no GPU. A method's run takes 4-40 minutes there, its
four attacks about 20 minutes more; the cells are cached, so the table fills over several sittings.
The genetic attack uses 200 examples and population 20 x 10 generations on CPU (the paper's 60 x 20
costs 6x the forward passes).
Outputs: runs/robustness_minilm/robustness_table.{md,json}, robustness.png.
"""

from jaxrobust.study import study_config

METHODS = ("ft", "adv", "freelb", "ascc", "infobert", "rift")


def get_config(arg=None):
    c = study_config()
    c.experiments.update({m: f"{m}_minilm" for m in METHODS})
    c.methods = METHODS
    c.seeds = (0, 1, 2)
    c.n_examples = 500
    c.genetic.update(n=200, population=20, generations=10)
    c.machine = "2-core x86-64 CPU build machine (no GPU)"
    c.ledger = "results/robustness_minilm_cells"  # committed: the table outlives runs/
    return c
