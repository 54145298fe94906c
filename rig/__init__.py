"""The rig: drivers, analysis and the simulated bench for NB-IoT smart water meter conformance."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rig.bench import Bench

__all__ = ["Bench"]


def __getattr__(name: str):
    if name == "Bench":
        from rig.bench import Bench

        return Bench
    raise AttributeError(name)
