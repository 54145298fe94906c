"""Writes docs/device-profile.md from the profile models and the defect profiles, so the two never drift.

`python -m rig.profiles.document > docs/device-profile.md`; a test checks the file is up to date.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel

from rig.profiles.device import DeviceProfile, Identity, Logs, Maintenance, Parts, PlatformAuth, Ports, Upgrade, Valve
from rig.profiles.device_sim import MeterSim, ModuleSim

ROOT = Path(__file__).resolve().parents[2]
DEFECTS = ROOT / "profiles" / "devices" / "defects"

INTRO = """# The device profile

A device profile says who the device under test is, which bench parts it offers, how the rig reaches
its ports, and (for the simulated bench) how the twin behaves. It is YAML, validated by
`rig/profiles/device.py` and `rig/profiles/device_sim.py`; a bad key stops the run naming the file and
field. Real devices ignore the `sim:` section. (This page is generated: `python -m rig.profiles.document`.)

`extends: <file>` (relative to the profile) loads another profile first and applies this one on top:
mappings merge key by key, lists and values replace. Every defect profile is the reference meter plus
one or two switches:

```yaml
extends: ../reference-meter.yaml
name: c3-no-release-assistance
sim:
  meter:
    release_assistance: false
```

**Secrets** (`maintenance.password`, `upgrade.signing_key`, `platform_auth.key`, `sim.meter.image_key`) are
quoted text or, to keep them out of the file, `{env: VARIABLE}`: the value of that environment variable when
the profile loads (the twin, a child of the rig, inherits it). An unset or empty variable is a profile error
naming the field and the variable. A secret is masked in every repr, log, report and run file; an error about it never
repeats the value. `rig report` rebuilds a run without the variables set (it needs no secret).

**What every profile (bench, device, plan) must be**: a UTF-8 YAML file of at most 1 MB (a larger one is
refused before it is read), mappings and lists nested at most 64 deep and at most 200,000 values with
aliases expanded (anchors and aliases are fine; "billion laughs" bombs are not), no key twice in one
mapping, at most 16 files in an `extends:` chain. Every number is finite (no `.inf`, `.nan`), waits and
durations are never negative, time zones are IANA names this machine's zoneinfo knows. A bad file stops
`certify`, `certify --list`, `sim` and `report` with exit code 2 and one line naming the file, the field and
the reason.
"""


def _default(field) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "(section)"
    if hasattr(field.default, "get_secret_value"):
        return "****"
    return str(field.default)


def field_table(model: type[BaseModel], prefix: str) -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        rows.append(f"| `{prefix}{name}` | `{_default(field)}` | {field.description or ''} |")
    return "\n".join(rows)


def _switches(data: dict, prefix: str = "") -> Iterator[str]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _switches(value, f"{prefix}{key}.")
        else:
            yield f"`{prefix}{key}: {value}`"


def defect_table() -> str:
    rows = ["| profile | switch | what it does | fails |", "|---|---|---|---|"]
    for path in sorted(DEFECTS.glob("*.yaml")):
        lines = path.read_text().splitlines()
        what = lines[0].removeprefix("# Defect: ").rstrip(".")
        fails = lines[1].removeprefix("# Fails ").split(";")[0]
        data = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k not in ("extends", "name")}
        rows.append(f"| `{path.name}` | {', '.join(_switches(data))} | {what} | {fails} |")
    return "\n".join(rows)


def device_profile_markdown() -> str:
    sections = [INTRO, "## Top level\n", field_table(DeviceProfile, "")]
    for title, model in (("identity", Identity), ("parts", Parts), ("maintenance", Maintenance),
                         ("ports", Ports), ("valve", Valve), ("upgrade", Upgrade), ("platform_auth", PlatformAuth),
                         ("logs", Logs)):
        sections += [f"\n## `{title}`\n", field_table(model, f"{title}.")]
    sections += ["\n## `sim.module`: the NB-IoT module (HiSilicon Boudica class, BC95/BC28 AT dialect)\n",
                 field_table(ModuleSim, "sim.module.")]
    sections += ["\n## `sim.meter`: the MCU firmware (null for `kind: module`)\n\n"
                 "Each switch is one behaviour of the checklist; the reference meter has every default.\n",
                 field_table(MeterSim, "sim.meter.")]
    sections += ["\n## The defect profiles (`profiles/devices/defects/`)\n\n"
                 "Named after the check they break (PROCEDURES.md, \"Defects the twin must offer\"). Each fails its "
                 "own check\nand at most the collateral PROCEDURES.md lists.\n", defect_table()]
    return "\n".join(sections) + "\n"


if __name__ == "__main__":
    print(device_profile_markdown(), end="")
