"""The bare module's radio behaviour, seen only through the bench: AT port, supply, attenuator, network log.

Attach and the network's inactivity release, T3324 then PSM, PSM keeping the attach, the current of
each state, coverage levels and no service, release assistance, idle-mode reselection (intra- and
inter-frequency, frequency lock) and the search backoff in no coverage (and its 60 s defect).
Reference values: PROCEDURES.md (inactivity timer 20 s, T3324 30 s, PSM 3 uA, idle 1 mA, connected
50 mA, ECL thresholds -105/-115 dBm, no service below -130 dBm, backoff 10, 20, 40 min ... 24 h).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model
from tests.module_helpers import (
    BARE_MODULE,
    SIM_BENCH,
    ModuleSession,
    attenuation_for_rsrp,
    module_bench,
    module_profile_variant,
)

DEVICE = load_model(BARE_MODULE, DeviceProfile).sim.module
BENCH = load_model(SIM_BENCH, BenchProfile)
CELL_A, CELL_B, CELL_C = BENCH.rf.cells
INACTIVITY_S = BENCH.network.inactivity_timer_s
T3324_S = 30.0
PSM_REQUEST = 'AT+CPSMS=1,,,"00111000","00001111"'  # T3412 24 h, T3324 30 s
EXACT_S = 1e-6
PAGING_SPIKE_A = 0.01  # the idle floor is below 1 mA, a paging wake about 30 mA
SEARCH_BURST_A = 0.01  # between searches the module sleeps at a few uA; searching draws about 45 mA


def ch(cell) -> int:
    return cell.attenuator_channel


def wait_psm(module: ModuleSession) -> None:
    """Request PSM (T3324 30 s) and wait until the module is in it."""
    module.ok("AT+NPSMR=1")
    module.ok(PSM_REQUEST)
    if module.ok("AT+NPSMR?") != ["+NPSMR:1,1"]:
        module.wait_line("+NPSMR:1", 120, since=module.mark())


# ---- attach, inactivity release, T3324, PSM -----------------------------------------------------------
@pytest.fixture(scope="module")
def module() -> ModuleSession:
    """CE0 on cell A alone; URCs on from the boot banner on, before the attach completes."""
    with module_bench(attenuation_db={ch(CELL_A): attenuation_for_rsrp(-95)}) as session:
        for command in ("AT+CSCON=1", "AT+NPSMR=1", "AT+CEREG=2"):
            session.ok(command)
        yield session


def test_attach_then_released_by_the_inactivity_timer_exactly_20s_after_the_last_activity(module):
    connected = module.wait_line("+CSCON:1", 60, since=0)
    released = module.wait_line("+CSCON:0", 60, since=0)
    attach = module.events("attach")
    assert len(attach) == 1 and attach[0]["time_s"] == pytest.approx(connected.time_s, abs=EXACT_S)
    assert released.time_s - connected.time_s == pytest.approx(INACTIVITY_S, abs=EXACT_S)
    release = module.events("rrc_release")[0]
    assert release["detail"] == "inactivity" and release["time_s"] == pytest.approx(released.time_s, abs=EXACT_S)

    sent = module.send_datagram()
    released = module.wait_line("+CSCON:0", 60, since=sent.since)
    uplink = module.events("uplink", sent.sent_s)[0]
    assert released.time_s - uplink["time_s"] == pytest.approx(INACTIVITY_S, abs=EXACT_S)


def test_idle_for_t3324_then_psm_30s_after_the_release(module):
    module.wait_released()
    module.ok(PSM_REQUEST)
    sent = module.send_datagram()
    released = module.wait_line("+CSCON:0", 60, since=sent.since)
    psm = module.wait_line("+NPSMR:1", 60, since=sent.since)
    assert psm.time_s - released.time_s == pytest.approx(T3324_S, abs=EXACT_S)
    assert module.ok("AT+CGATT?") == ["+CGATT:1"]


def test_psm_keeps_the_attach_and_data_wakes_it_with_a_service_request(module):
    wait_psm(module)
    woke_s = module.clock.now()
    since = module.mark()
    sent = module.send_datagram()
    assert module.find("+NPSMR:0", since) is not None
    module.wait_line("+CSCON:0", 60, since=sent.since)
    setups = module.events("rrc_setup", woke_s)
    assert [e["detail"] for e in setups] == ["mo-data"]
    assert [e["event"] for e in module.network_log()].count("attach") == 1
    assert module.events("detach") == [] and module.events("uplink", woke_s)


def test_currents_of_connected_idle_and_psm(module):
    wait_psm(module)
    psm_a = module.mean_current_a(60.0)
    assert psm_a == pytest.approx(DEVICE.psm_current_ua * 1e-6, rel=0.1)
    assert module.supply.measure_current_a() == pytest.approx(DEVICE.psm_current_ua * 1e-6, rel=0.1)

    sent = module.send_datagram()
    connected = module.supply.capture(2000, 1e-3)  # 2 s from the connection on, TX burst included
    assert float(np.mean(connected.currents_a)) == pytest.approx(DEVICE.connected_current_ma * 1e-3, rel=0.1)
    assert 0.15 < float(np.max(connected.currents_a)) < 0.25  # TX near 200 mA at 23 dBm

    module.wait_line("+CSCON:0", 60, since=sent.since)
    idle = module.supply.capture(10_000, 1e-3)  # 10 s inside the 30 s idle window
    assert float(np.mean(idle.currents_a)) == pytest.approx(DEVICE.idle_current_ma * 1e-3, rel=0.1)
    spikes = idle.times_s[1:][np.diff((idle.currents_a > PAGING_SPIKE_A).astype(int)) == 1]
    assert 3 <= len(spikes) <= 4  # one paging occasion every 2.56 s (+ the 20 ms wake)
    assert np.all(np.abs(np.diff(spikes) - 2.58) < 0.01)
    assert float(np.max(idle.currents_a)) == pytest.approx(DEVICE.paging_spike_ma * 1e-3, rel=0.1)


def test_waking_from_psm_draws_radio_current_during_the_service_request(module):
    wait_psm(module)
    socket = module.ok("AT+NSOCR=DGRAM,17,5000,1")[0]
    since = module.mark()
    module.port.write_line(f"AT+NSOST={socket},127.0.0.1,9999,4,DEADBEEF")
    capture = module.supply.capture(2000, 1e-3)  # from the command on
    accepted = module.wait_line("OK", 5, since=since)
    connected = module.wait_line("+CSCON:1", 5, since=since)
    module.ok(f"AT+NSOCL={socket}")
    setup = capture.currents_a[(capture.times_s > accepted.time_s) & (capture.times_s < connected.time_s - 1e-3)]
    assert len(setup) >= 200  # random access and RRC setup take about 0.25 s at CE0
    assert float(np.mean(setup)) == pytest.approx(DEVICE.connected_current_ma * 1e-3, rel=0.1)


def test_release_assistance_releases_within_a_second_of_the_send(module):
    wait_psm(module)
    sent = module.send_datagram(flags="0x200")
    released = module.wait_line("+CSCON:0", 10, since=sent.since)
    assert released.time_s - sent.sent_s < 1.0
    assert module.events("rrc_release", sent.sent_s)[0]["detail"] == "release-assistance"

    wait_psm(module)
    sent = module.send_datagram()
    released = module.wait_line("+CSCON:0", 60, since=sent.since)
    assert released.time_s - sent.sent_s > INACTIVITY_S
    assert module.events("rrc_release", sent.sent_s)[0]["detail"] == "inactivity"


def test_psm_current_of_a_12ua_module_measures_12ua(tmp_path):
    profile = module_profile_variant(tmp_path, "bare-module-psm-12ua", psm_current_ua=12)
    with module_bench(profile) as module:
        module.ok("AT+NPSMR=1")
        module.ok(PSM_REQUEST)
        module.wait_line("+NPSMR:1", 120)
        assert module.mean_current_a(60.0) == pytest.approx(12e-6, rel=0.1)


# ---- coverage --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coverage() -> ModuleSession:
    with module_bench(attenuation_db={ch(CELL_A): attenuation_for_rsrp(-95)}) as session:
        session.wait_registered()
        session.ok("AT+CEREG=1")
        yield session


@pytest.mark.parametrize(("rsrp_dbm", "ecl"), [(-95, 0), (-110, 1), (-120, 2)], ids=["CE0", "CE1", "CE2"])
def test_coverage_level_follows_rsrp_with_thresholds_105_and_115(coverage, rsrp_dbm, ecl):
    coverage.attenuator.set_attenuation(ch(CELL_A), attenuation_for_rsrp(rsrp_dbm))
    stats = coverage.nuestats()
    assert stats["ECL"] == ecl
    assert abs(stats["Signal power"] - rsrp_dbm * 10) <= 40  # 1 dB of measurement noise (sigma), in tenths
    assert (stats["PCI"], stats["EARFCN"]) == (CELL_A.pci, CELL_A.earfcn)


def test_worse_coverage_makes_a_longer_attach(coverage):
    attach_s = {}
    for level, rsrp_dbm in (("CE0", -95), ("CE2", -120)):
        coverage.attenuator.set_attenuation(ch(CELL_A), attenuation_for_rsrp(rsrp_dbm))
        coverage.ok("AT+CFUN=0")
        started = coverage.send("AT+CFUN=1").final_s
        coverage.wait_line("+CEREG:1", 120)
        attach = coverage.events("attach", started)
        assert len(attach) == 1
        attach_s[level] = attach[0]["time_s"] - started
    assert attach_s["CE2"] > attach_s["CE0"]


def test_no_service_below_130dbm_then_attach_when_the_signal_returns():
    with module_bench(attenuation_db={ch(CELL_A): attenuation_for_rsrp(-133)}) as module:
        module.clock.sleep(300)
        assert module.ok("AT+CGATT?") == ["+CGATT:0"]
        assert module.ok("AT+CEREG?") == ["+CEREG:0,2"]  # still searching
        assert module.events("attach") == []
        module.ok("AT+CEREG=1")
        module.attenuator.set_attenuation(ch(CELL_A), attenuation_for_rsrp(-127))
        registered = module.wait_line("+CEREG:1", 900)
        first_search_s = module.history[0].time_s  # the search starts with the boot banner
        # found by the next search, 10 min after the first began (12 s of search, then the attach and any
        # retries of it), not by the one after that (30 min)
        assert 612.0 < registered.time_s - first_search_s < 700.0
        assert module.ok("AT+CGATT?") == ["+CGATT:1"]
        assert module.nuestats()["ECL"] == 2


# ---- reselection ------------------------------------------------------------------------------------
@contextmanager
def reselection_bench(
    serving_db: float, other_cell, other_db: float, reselection: bool, lock: str | None = None
) -> Iterator[ModuleSession]:
    """A module camped on cell A in RRC idle (PSM off), with `other_cell` audible."""
    with module_bench(attenuation_db={ch(CELL_A): serving_db, ch(other_cell): other_db}) as module:
        if reselection:
            module.ok("AT+NCONFIG=CELL_RESELECTION,TRUE")
            module.send("AT+NRB")
        if lock:
            module.ok(lock)
        module.wait_registered()
        module.wait_released()
        assert module.nuestats()["PCI"] == CELL_A.pci
        yield module


def fade(module: ModuleSession, other_cell) -> float:
    """Cell A falls to -110 dBm, the other rises to -95 dBm; returns the time of the swap."""
    module.attenuator.set_attenuation(ch(CELL_A), attenuation_for_rsrp(-110))
    module.attenuator.set_attenuation(ch(other_cell), attenuation_for_rsrp(-95))
    return module.clock.now()


@pytest.mark.parametrize("other", [CELL_B, CELL_C], ids=["intra-frequency", "inter-frequency"])
def test_reselection_on_moves_to_the_better_cell_within_the_idle_window(other):
    with reselection_bench(attenuation_for_rsrp(-95), other, attenuation_for_rsrp(-105), True) as module:
        assert "+NCONFIG:CELL_RESELECTION,TRUE" in module.ok("AT+NCONFIG?")
        module.ok("AT+CEREG=2")
        swapped_s = fade(module, other)
        urc = module.wait_line(re.compile(r"\+CEREG:1,.*"), 30)
        assert urc.text == f"+CEREG:1,{other.tac:04X},{other.cell_id:08X},9"
        reselections = module.events("reselection", swapped_s)
        assert [(e["pci"], e["earfcn"]) for e in reselections] == [(other.pci, other.earfcn)]
        assert reselections[0]["time_s"] - swapped_s <= 20.0  # the shortest idle window C2a allows
        stats = module.nuestats()
        assert (stats["PCI"], stats["EARFCN"], stats["Cell ID"]) == (other.pci, other.earfcn, other.cell_id)


@pytest.mark.parametrize("other", [CELL_B, CELL_C], ids=["intra-frequency", "inter-frequency"])
def test_reselection_off_stays_on_the_suitable_serving_cell(other):
    with reselection_bench(attenuation_for_rsrp(-95), other, attenuation_for_rsrp(-105), False) as module:
        assert "+NCONFIG:CELL_RESELECTION,FALSE" in module.ok("AT+NCONFIG?")
        swapped_s = fade(module, other)
        module.clock.sleep(60)
        assert module.events("reselection", swapped_s) == []
        assert module.nuestats()["PCI"] == CELL_A.pci


def test_frequency_lock_keeps_the_module_off_other_earfcns():
    with reselection_bench(
        attenuation_for_rsrp(-95), CELL_C, attenuation_for_rsrp(-105), True, lock=f"AT+NEARFCN=0,{CELL_A.earfcn}"
    ) as module:
        swapped_s = fade(module, CELL_C)
        module.clock.sleep(60)
        assert module.events("reselection", swapped_s) == []
        assert module.nuestats()["EARFCN"] == CELL_A.earfcn

        # only cell C left: a locked module finds nothing to camp on, an unlocked one camps on C
        module.ok("AT+CFUN=0")
        module.ok("AT+NCSEARFCN")
        module.attenuator.set_attenuation(ch(CELL_A), 95)
        started_s = module.send("AT+CFUN=1").final_s
        module.clock.sleep(150)
        assert module.ok("AT+CGATT?") == ["+CGATT:0"]
        assert module.events("attach", started_s) == []
        module.ok("AT+CFUN=0")
        module.ok("AT+NEARFCN=0,0")
        started_s = module.send("AT+CFUN=1").final_s
        module.wait_registered()
        assert [(e["pci"], e["earfcn"]) for e in module.events("attach", started_s)] == [(CELL_C.pci, CELL_C.earfcn)]


# ---- search backoff in no coverage ------------------------------------------------------------------
def search_burst_starts(module: ModuleSession, duration_s: float, period_s: float = 1.0) -> list[float]:
    """Power the module with every cell out of reach and log its current; keep only burst start times."""
    module.supply.set_output(True)
    starts: list[float] = []
    searching = False
    for chunk in module.supply.data_log(period_s, duration_s):
        high = chunk.mean_a > SEARCH_BURST_A
        edges = np.flatnonzero(np.diff(np.concatenate([[searching], high]).astype(int)) == 1)
        starts += [chunk.start_s + i * period_s for i in edges]
        searching = bool(high[-1])
    return starts


def test_search_backs_off_10_20_40_min_up_to_24h_in_no_coverage():
    with module_bench(attenuation_db={}, power=False) as module:
        starts = search_burst_starts(module, 4 * 86400.0)
    intervals = np.diff(starts)
    expected = np.minimum(DEVICE.search_backoff_first_s * 2.0 ** np.arange(len(intervals)), DEVICE.search_backoff_cap_s)
    assert len(intervals) >= 10, starts
    assert np.all(np.abs(intervals - expected) <= 0.1 * expected), list(zip(intervals, expected, strict=True))
    assert expected[-2:].tolist() == [86400.0, 86400.0]


def test_a_module_searching_every_60s_shows_60s_intervals(tmp_path):
    profile = module_profile_variant(tmp_path, "bare-module-search-60s", search_fixed_interval_s=60)
    with module_bench(profile, attenuation_db={}, power=False) as module:
        starts = search_burst_starts(module, 3600.0)
    intervals = np.diff(starts)
    assert len(intervals) >= 40, starts
    assert np.all(np.abs(intervals[1:] - 60.0) <= 6.0), intervals
