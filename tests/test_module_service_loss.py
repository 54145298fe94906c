"""A module that loses its serving cell: cell selection onto any suitable cell (no reselection setting
needed), or out of service and back to the search when none is left."""

from __future__ import annotations

from tests.module_helpers import FAR_DB, module_bench


def test_losing_the_serving_cell_selects_another_frequency_even_with_reselection_off() -> None:
    with module_bench(attenuation_db={1: 5.0}) as module:
        module.wait_registered()
        module.wait_released()
        module.bench.attenuator.set_attenuation(1, FAR_DB)
        module.bench.attenuator.set_attenuation(4, 5.0)
        module.clock.sleep(30)
        assert module.nuestats()["EARFCN"] == 2525
        assert [event["pci"] for event in module.events("reselection")] == [301]


def test_no_suitable_cell_left_means_out_of_service_then_a_new_attach_when_coverage_returns() -> None:
    with module_bench(attenuation_db={1: 5.0}) as module:
        module.wait_registered()
        module.ok("AT+CEREG=1")
        module.wait_released()
        module.bench.attenuator.set_attenuation(1, FAR_DB)
        module.wait_line("+CEREG:2", 60)
        assert module.send("AT+CGATT?").body == ["+CGATT:0"]
        assert len(module.events("radio_link_lost")) == 1
        module.bench.attenuator.set_attenuation(1, 5.0)
        module.wait_line("+CEREG:1", 3600)
        assert len(module.events("attach")) == 2
