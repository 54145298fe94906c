"""Fixtures for the project's own tests: a simulated bench per module and raw VISA sessions to its twin.

The repo-root conftest loads the rig's plugin (`bench`, `clock`, `attenuator`, `supply`, session
scoped); the fixtures here are named `sim_*` so they never shadow those.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa

from rig.bench import Bench
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
SIM_BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
RAW_TIMEOUT_MS = 2000


@pytest.fixture(scope="session")
def sim_bench_path() -> Path:
    return SIM_BENCH


@pytest.fixture(scope="module")
def sim_bench(sim_bench_path: Path) -> Iterator[Bench]:
    """A bench on its own twin (launched for this module, stopped and left safe after it)."""
    with Bench(load_model(sim_bench_path, BenchProfile), sim_bench_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def sim_visa() -> pyvisa.ResourceManager:
    """pyvisa-py's resource manager for talking to the twin's instruments directly.

    Never closed here: it is shared by everything in the process that uses `@py`, benches included.
    """
    return pyvisa.ResourceManager("@py")


def open_raw(manager: pyvisa.ResourceManager, resource: str, termination: str):
    session = manager.open_resource(
        resource, read_termination=termination, write_termination=termination, timeout=RAW_TIMEOUT_MS
    )
    session.chunk_size = 1 << 20
    return session


@pytest.fixture(scope="module")
def sim_raw_attenuator(sim_bench: Bench, sim_visa: pyvisa.ResourceManager):
    """The twin's RC4DAT as a raw socket session (CR LF lines), beside the bench's own driver."""
    session = open_raw(sim_visa, sim_bench.endpoints["instruments"]["attenuator"], "\r\n")
    yield session
    session.close()


@pytest.fixture(scope="module")
def sim_raw_supply(sim_bench: Bench, sim_visa: pyvisa.ResourceManager):
    """The twin's N6705C as a raw socket session (LF lines), beside the bench's own driver."""
    session = open_raw(sim_visa, sim_bench.endpoints["instruments"]["supply"], "\n")
    yield session
    session.close()
