"""Parity on the real MiniLM-L6 registry bundle, fetched through the same code users run."""

from __future__ import annotations

import pytest

from jaxrobust.parity import TOLERANCE, run_parity


@pytest.mark.assets
def test_minilm_bundle_matches_transformers():
    result = run_parity("bundle:minilm-l6", num_labels=2)
    assert result.max_abs_diff <= TOLERANCE
