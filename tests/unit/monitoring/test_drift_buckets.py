"""The buckets a categorical's drift figures carry (levels, window counts, reference shares) and the
histograms monitor.json builds from them, without reading the monitor's state."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

from factory.monitoring.drift import DriftMonitor
from factory.monitoring.outputs import histograms
from factory.monitoring.profile import build_profile


def test_categorical_figures_carry_their_buckets_and_the_histograms_use_them():
    reference = pa.table({"amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                          "channel": ["a", "a", "a", "b", "b", "c"]})
    profile = build_profile(reference, {"amount": "numeric", "channel": "categorical"}, [0.1] * 6, bins=2)
    monitor = DriftMonitor(profile, {"categorical_bins": 2})
    monitor.update(pa.table({"amount": [1.0, 9.0, None], "channel": ["b", "zzz", "c"], "score": [0.2, 0.3, 0.4]}))
    monitor.update(pa.table({"amount": [2.0], "channel": ["a"], "score": [0.5]}))
    result = monitor.result()
    channel = result["features"]["channel"]
    assert channel["levels"] == ["a", "b", "(other)"]  # the two most frequent reference levels, then the rest
    assert channel["counts"] == [1, 1, 2]  # "c" (known, not counted) and "zzz" (unseen) in (other)
    assert channel["reference_shares"] == pytest.approx([3 / 6, 2 / 6, 1 / 6])
    assert sum(result["features"]["amount"]["counts"]) == 3  # numerics: window counts on the profile's bins
    json.dumps(result, allow_nan=False)

    drawn = histograms(profile, result)
    assert drawn["channel"] == {"kind": "categorical", "levels": ["a", "b", "(other)"],
                                "reference": [3, 2, 1], "current": [1, 1, 2]}
    assert drawn["amount"]["current"] == result["features"]["amount"]["counts"]
    assert drawn["score"]["reference"] == profile.score["counts"]
