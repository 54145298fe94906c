"""Hypothesis settings for the property tests: short and repeatable in CI, longer on demand.

`HYPOTHESIS_PROFILE=long` (e.g. `HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_properties_*.py`)
runs a hundred times the examples with fresh randomness; the default `ci` profile is derandomized, so a CI
run tries the same inputs every time and a failure reproduces.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILES = {
    "ci": {"derandomize": True, "max_examples": 150, "database": None},
    "long": {"derandomize": False, "max_examples": 15_000},
}


def property_settings(max_examples: int | None = None) -> settings:
    """The settings of the chosen profile; `max_examples` scales the CI count for an expensive property."""
    profile = dict(PROFILES[os.environ.get("HYPOTHESIS_PROFILE", "ci")])
    if max_examples is not None and profile["derandomize"]:
        profile["max_examples"] = max_examples
    return settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], **profile)
