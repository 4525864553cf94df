"""How many samples a percentile needs, worked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from dermassist.base.percentiles import THIN_MARK, min_samples, percentile_cell, thin_footnote


def test_the_fewest_samples_whose_percentile_lies_below_the_largest() -> None:
    # 100 / (100 - p): p50 2, p95 20, p99 100, p90 10, p99.9 1000 (float 100 / 0.1 = 1000.0000000000001, not 1001)
    assert [min_samples(p) for p in (50, 90, 95, 99, 99.9)] == [2, 10, 20, 100, 1000]
    # what the rule means: with n samples numpy's linear percentile stays under the largest exactly from that n on
    for p in (95, 99):
        n = min_samples(p)
        assert np.percentile(np.arange(n - 1.0), p) > n - 3  # n-1 samples: within one step of the largest
        assert np.percentile(np.arange(float(n)), p) < n - 1  # n samples: below the largest


@pytest.mark.parametrize("percent", [0, 100, -5, 120])
def test_a_percent_outside_the_open_interval_is_refused(percent: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        min_samples(percent)


def test_a_cell_is_marked_only_when_its_samples_are_known_and_too_few() -> None:
    assert percentile_cell(70.04, 95, 19, ".1f") == "70.0" + THIN_MARK
    assert percentile_cell(70.04, 95, 20, ".1f") == "70.0"
    assert percentile_cell(1234.0, 99, 99, ".0f") == "1234" + THIN_MARK
    assert percentile_cell(1234.0, 99, None, ".0f") == "1234"  # the count not known: nothing claimed
    assert "p95: 20, p99: 100" in thin_footnote() and thin_footnote().startswith(THIN_MARK)
