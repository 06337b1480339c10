"""The clean-vs-robust frontier: which models no other model beats on both axes, and the sentence
that says where RIFT stands."""

from __future__ import annotations

import dataclasses

from jaxrobust import frontier
from jaxrobust.frontier import Point


def _table(pts: list[Point]) -> dict:
    return {"gradient": {"points": [dataclasses.asdict(p) for p in pts],
                         "frontier": [dataclasses.asdict(p) for p in frontier.on_frontier(pts)]}}


def test_the_frontier_keeps_exactly_the_undominated_models():
    pts = [Point("ft", 0, 0.85, 0.60), Point("ft", 1, 0.84, 0.58),  # beaten on both axes by ft 0
           Point("adv", 0, 0.83, 0.66), Point("rift", 0, 0.80, 0.70),
           Point("rift", 1, 0.80, 0.66),  # same clean as rift 0, less robust
           Point("freelb", 0, 0.70, 0.70)]  # as robust as rift 0 but less accurate clean
    front = frontier.on_frontier(pts)
    assert [(p.method, p.seed) for p in front] == [("ft", 0), ("adv", 0), ("rift", 0)]
    # Two models at the same point do not dominate each other.
    twins = [Point("a", 0, 0.8, 0.6), Point("b", 0, 0.8, 0.6)]
    assert len(frontier.on_frontier(twins)) == 2


def test_the_summary_counts_seeds_on_the_frontier_and_measures_rifts_gap():
    on = _table([Point("ft", 0, 0.85, 0.60), Point("rift", 0, 0.80, 0.70), Point("rift", 1, 0.79, 0.60)])
    (line,) = frontier.summary_lines(on)
    assert "ft (1 of 1 seeds)" in line and "rift (1 of 2 seeds)" in line and "RIFT has 1 of its 2 seeds on it" in line
    off = _table([Point("ft", 0, 0.85, 0.60), Point("adv", 0, 0.82, 0.71), Point("rift", 0, 0.80, 0.68)])
    (line,) = frontier.summary_lines(off)
    # adv 0 beats rift 0 on both axes: 3 points more accurate under attack.
    assert "RIFT is not on it" in line and "clean 80.0, attacked 68.0) is 3.0 points" in line
