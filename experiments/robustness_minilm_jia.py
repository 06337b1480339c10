"""The robustness study's FT and RIFT models attacked with another candidate source: Jia et al.'s
counter-fitted neighbour table (the file the RIFT and ASCC papers evaluated with), so a reader sees
whether the ranking of the main table depends on the synonym source.

Command:  make experiment EXP=robustness_minilm_jia \\
              ARGS="--config.synonyms.source=counterfitted:PATH/counterfitted_neighbors.json"
          (the table is never bundled; without a path the command stops in one line). Here it is
          ../shared/data/counterfitted_neighbors.json.
The models are robustness_minilm's (same experiments, seeds 0-2): its finished runs, and those of
`make experiment EXP=ft_minilm` / `rift_minilm`, are found and reused, so only the attacks run.
Everything else (the four attacks, their constraints, the 500 seeded test sentences, the budget) is
the main study's. Outputs: runs/robustness_minilm_jia/robustness_table.{md,json}, robustness.png,
frontier.png, summary.md; the cells in results/robustness_minilm_jia_cells/.
"""

from jaxrobust.configs import load_config


def get_config(arg=None):
    c = load_config("robustness_minilm")
    c.methods = ("ft", "rift")
    c.synonyms.source = "counterfitted:"  # the path is the user's: --config.synonyms.source=counterfitted:PATH
    c.synonyms.k = 8  # the table lists up to 8 neighbours per word
    c.ledger = "results/robustness_minilm_jia_cells"
    return c
