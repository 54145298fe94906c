"""Bench self-test: before any checklist item is judged, the bench proves its instruments answer.

A failure here is a rig fault: every instrument problem is raised as `broken`, never as a product
failure.
"""

from __future__ import annotations

import allure
import pytest

from rig.instruments.attenuator import Rc4datAttenuator
from rig.instruments.power import N6705CPowerAnalyser

pytestmark = [allure.epic("bench"), allure.feature("B0 bench self-test")]


@pytest.mark.needs("attenuator")
def test_attenuator_sets_and_reads_back_every_channel(attenuator: Rc4datAttenuator) -> None:
    allure.dynamic.parameter("model", attenuator.model)
    allure.dynamic.parameter("serial", attenuator.serial)
    for channel, value_db in zip((1, 2, 3, 4), (10.0, 20.25, 47.5, 95.0), strict=True):
        assert attenuator.set_attenuation(channel, value_db) == value_db
    assert attenuator.attenuations_db() == [10.0, 20.25, 47.5, 95.0]


@pytest.mark.needs("power_analyser")
def test_supply_sources_its_voltage(supply: N6705CPowerAnalyser, bench) -> None:
    allure.dynamic.parameter("identity", supply.identity())
    nominal_v = bench.profile.instruments.supply.voltage_v
    supply.set_output(True)
    try:
        assert supply.output_on()
        assert supply.measure_voltage_v() == pytest.approx(nominal_v, abs=0.05)
    finally:
        supply.set_output(False)
    assert not supply.output_on()
