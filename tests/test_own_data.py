"""The README's "your own data" settings on a small separable CSV: a model worth attacking."""

from __future__ import annotations

import random

import pytest

from jaxrobust.configs import load_config
from jaxrobust.train import train_and_evaluate

POSITIVE = "great wonderful brilliant moving delightful superb charming excellent".split()
NEGATIVE = "awful dreadful boring dull terrible tedious bland weak".split()
SUBJECTS = ["the film", "this movie", "the story", "the acting", "the plot", "the ending", "the cast", "the script"]


def separable_csv(path, n: int = 200, seed: int = 0):
    """``n`` distinct two-class sentences, "SUBJECT was ADJ and ADJ", half of each class."""
    rng, rows = random.Random(seed), set()
    while len(rows) < n:
        label = len(rows) % 2
        a, b = rng.sample(POSITIVE if label else NEGATIVE, 2)
        rows.add((f"{rng.choice(SUBJECTS)} was {a} and {b}", "pos" if label else "neg"))
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in sorted(rows)))
    return path


@pytest.mark.assets
@pytest.mark.slow
def test_own_data_settings_learn_a_separable_csv(tmp_path):
    config = load_config("own_data_minilm", [f"--config.task=csv:{separable_csv(tmp_path / 'reviews.csv')}"])
    results = train_and_evaluate(config, tmp_path / "run")
    assert results["n_train"] == 160 and results["n_dev"] == 20
    assert results["dev_accuracy"] >= 0.9
