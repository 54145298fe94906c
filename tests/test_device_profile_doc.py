"""The device-profile document and the defect profiles stay true to the models."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rig.profiles.device import DeviceProfile
from rig.profiles.document import DEFECTS, device_profile_markdown
from rig.profiles.loader import deep_merge, load_model, read_profile

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "profiles" / "devices" / "reference-meter.yaml"


def test_device_profile_document_is_generated_from_the_models() -> None:
    assert (ROOT / "docs" / "device-profile.md").read_text() == device_profile_markdown(), (
        "docs/device-profile.md is stale: run `python -m rig.profiles.document > docs/device-profile.md`"
    )


@pytest.mark.parametrize("path", sorted(DEFECTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_defect_profile_is_the_reference_meter_with_its_switches(path: Path) -> None:
    defect = load_model(path, DeviceProfile)
    base = path.parent / yaml.safe_load(path.read_text())["extends"]
    reference = load_model(base, DeviceProfile)
    assert defect.name == path.stem
    meter, module = (reference.sim.meter.model_dump() if reference.sim.meter else {}), reference.sim.module.model_dump()
    changed = {key for key, value in (defect.sim.meter.model_dump() if defect.sim.meter else {}).items()
               if value != meter[key]}
    changed |= {key for key, value in defect.sim.module.model_dump().items() if value != module[key]}
    changed |= {"valve"} if defect.valve != reference.valve else set()
    assert 1 <= len(changed) <= 3, changed
    assert path.stem.split("-")[0] in path.read_text().splitlines()[1].lower()


def test_extends_merges_mappings_and_replaces_values(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {REFERENCE}\nname: child\nsim:\n  meter:\n    retry_waits_s: [60]\n")
    profile = load_model(child, DeviceProfile)
    assert profile.sim.meter.retry_waits_s == [60.0]
    assert profile.sim.meter.release_assistance is True
    assert profile.identity.vendor == load_model(REFERENCE, DeviceProfile).identity.vendor
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_extends_loop_and_missing_base_are_named(tmp_path: Path) -> None:
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\nname: x\n")
    with pytest.raises(ValueError, match="loop"):
        read_profile(loop)
    missing = tmp_path / "orphan.yaml"
    missing.write_text("extends: nowhere.yaml\nname: x\n")
    with pytest.raises(ValueError, match="nowhere.yaml does not exist"):
        read_profile(missing)
