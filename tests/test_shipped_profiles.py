"""Every profile shipped in profiles/ loads and validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model
from rig.profiles.plan import load_plan

PROFILES = Path(__file__).resolve().parents[1] / "profiles"


@pytest.mark.parametrize("path", sorted((PROFILES / "benches").glob("*.yaml")), ids=lambda p: p.stem)
def test_bench_profile_loads(path: Path) -> None:
    load_model(path, BenchProfile)


@pytest.mark.parametrize("path", sorted((PROFILES / "devices").rglob("*.yaml")), ids=lambda p: p.stem)
def test_device_profile_loads(path: Path) -> None:
    load_model(path, DeviceProfile)


@pytest.mark.parametrize("path", sorted((PROFILES / "plans").glob("*.yaml")), ids=lambda p: p.stem)
def test_plan_loads(path: Path) -> None:
    load_plan(path)
