"""The bare module's AT dialect (BC95/BC28, Hi2115) as a host sees it on the serial port.

Manual-style transcripts are held as text blocks and compared line by line; where a value comes from
the radio (powers, SNR) the format and the range are checked instead, against the attenuation set
and the bench profile's cells. The module is reached only through the twin's real ports.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from rig.profiles.bench import BenchProfile
from rig.profiles.device import DeviceProfile
from rig.profiles.loader import load_model
from tests.module_helpers import BARE_MODULE, SIM_BENCH, ModuleSession, module_bench

DEVICE = load_model(BARE_MODULE, DeviceProfile)
CELLS = load_model(SIM_BENCH, BenchProfile).rf.cells
CELL_A, CELL_B = CELLS[0], CELLS[1]
FIRMWARE = DEVICE.sim.module.firmware_version
BOOT_TIME_S = DEVICE.sim.module.boot_time_s
AT_DELAY_S = DEVICE.sim.module.at_response_delay_s


def block(text: str) -> list[str]:
    """An expected transcript written as an indented text block, one line per module line."""
    return textwrap.dedent(text).strip("\n").splitlines()


POWER_ON_BANNER = block("""
    Boot: Unsigned
    Security B.. Verified
    Protocol A.. Verified
    Apps A...... Verified
    REBOOT_CAUSE_SECURITY_PMU_POWER_ON_RESET
    Neul
    OK
""")

NRB_TRANSCRIPT = block("""
    REBOOTING
    Boot: Unsigned
    Security B.. Verified
    Protocol A.. Verified
    Apps A...... Verified
    REBOOT_CAUSE_APPLICATION_AT
    Neul
    OK
""")

CGMR = block(f"""
    SSB,{FIRMWARE}
    SECURITY_A,{FIRMWARE}
    PROTOCOL_A,{FIRMWARE}
    APPLICATION_A,{FIRMWARE}
    SECURITY_B,{FIRMWARE}
    RADIO,Hi2115_RF1
    OK
""")

NCONFIG_DEFAULTS = block("""
    +NCONFIG:AUTOCONNECT,TRUE
    +NCONFIG:CR_0354_0338_SCRAMBLING,TRUE
    +NCONFIG:CR_0859_SI_AVOID,TRUE
    +NCONFIG:COMBINE_ATTACH,FALSE
    +NCONFIG:CELL_RESELECTION,FALSE
    +NCONFIG:ENABLE_BIP,FALSE
    +NCONFIG:MULTITONE,TRUE
    +NCONFIG:NAS_SIM_POWER_SAVING_ENABLE,TRUE
    +NCONFIG:BARRING_RELEASE_DELAY,64
    +NCONFIG:RELEASE_VERSION,13
    +NCONFIG:SYNC_TIME_PERIOD,0
    OK
""")

NUESTATS_KEYS = [
    "Signal power", "Total power", "TX power", "TX time", "RX time", "Cell ID", "ECL", "SNR", "EARFCN", "PCI",
    "RSRQ", "OPERATOR MODE", "CURRENT BAND",
]
NUESTATS_LINE = re.compile(r"(?P<key>[A-Z][A-Za-z ]*[a-zA-Z]):(?P<value>-?\d+)")
CELL_LINE = re.compile(r"NUESTATS:CELL,(\d+),(\d+),([01]),(-?\d+),(-?\d+),(-?\d+),(-?\d+)")
CE0_ATTENUATION_DB = 5.0
CE0_SIGNAL_POWER = -950  # -60 dBm RS - 30 dB path - 5 dB, in tenths of dBm
SIGNAL_POWER_TOLERANCE = 30


@pytest.fixture(scope="module")
def module() -> ModuleSession:
    """One module for the whole file: CE0 on cell A alone, powered, URCs for registration and RRC on."""
    with module_bench(attenuation_db={CELL_A.attenuator_channel: CE0_ATTENUATION_DB}) as session:
        yield session


@pytest.fixture
def attached(module: ModuleSession) -> ModuleSession:
    module.wait_registered()
    return module


# ---- boot ----------------------------------------------------------------------------------------
def test_power_on_prints_the_boot_banner_with_the_power_on_reset_cause():
    with module_bench(power=False) as module:
        powered_s = module.clock.now()
        banner = module.power_on()
        assert [line.text for line in banner] == POWER_ON_BANNER
        assert banner[0].time_s == pytest.approx(powered_s + BOOT_TIME_S)
        assert module.ok("AT") == []


def test_nrb_prints_rebooting_first_then_the_banner_with_the_application_cause():
    with module_bench() as module:
        reply = module.send("AT+NRB")
        assert [line.text for line in reply.lines] == NRB_TRANSCRIPT
        assert reply.lines[0].time_s == pytest.approx(reply.sent_s + AT_DELAY_S)
        assert reply.lines[1].time_s == pytest.approx(reply.lines[0].time_s + BOOT_TIME_S)
        assert module.ok("AT") == []


def test_cell_reselection_switch_takes_effect_only_after_nrb():
    channel_a, channel_b = CELL_A.attenuator_channel, CELL_B.attenuator_channel
    with module_bench(attenuation_db={channel_a: 5.0, channel_b: 15.0}) as module:
        module.ok("AT+CSCON=1")
        module.wait_line("+CSCON:0", 60)  # attached, then released: RRC idle (PSM not requested)
        assert module.ok("AT+NCONFIG=CELL_RESELECTION,TRUE") == []
        assert "+NCONFIG:CELL_RESELECTION,TRUE" in module.ok("AT+NCONFIG?")
        swapped_s = module.clock.now()
        module.attenuator.set_attenuation(channel_a, 20.0)
        module.attenuator.set_attenuation(channel_b, 5.0)
        module.clock.sleep(40)
        assert module.events("reselection", swapped_s) == []
        assert module.nuestats()["PCI"] == CELL_A.pci

        module.attenuator.set_attenuation(channel_a, 5.0)
        module.attenuator.set_attenuation(channel_b, 15.0)
        assert module.send("AT+NRB").body[-2] == "REBOOT_CAUSE_APPLICATION_AT"
        module.ok("AT+CSCON=1")
        module.wait_line("+CSCON:0", 60)
        assert module.nuestats()["PCI"] == CELL_A.pci
        swapped_s = module.clock.now()
        module.attenuator.set_attenuation(channel_a, 20.0)
        module.attenuator.set_attenuation(channel_b, 5.0)
        module.clock.sleep(40)
        reselections = module.events("reselection", swapped_s)
        assert [(e["pci"], e["earfcn"]) for e in reselections] == [(CELL_B.pci, CELL_B.earfcn)]
        assert module.nuestats()["PCI"] == CELL_B.pci


# ---- identity ------------------------------------------------------------------------------------
def test_at_answers_ok(module):
    reply = module.send("AT")
    assert reply.text == "OK"
    assert reply.final_s == pytest.approx(reply.sent_s + AT_DELAY_S)


def test_ati_names_the_module(module):
    assert module.send("ATI").text.splitlines() == block(f"""
        Quectel
        BC28
        Revision:BC28{FIRMWARE[-6:]}
        OK
    """)


def test_cgmr_lists_the_firmware_of_the_profile(module):
    assert module.send("AT+CGMR").text.splitlines() == CGMR


def test_cgsn_gives_the_imei(module):
    assert module.send("AT+CGSN=1").text.splitlines() == [f"+CGSN:{DEVICE.identity.imei}", "OK"]


def test_nband_lists_the_bands(module):
    assert module.ok("AT+NBAND?") == ["+NBAND:5,8,3,28,20,1"]


# ---- function level, attach, registration URCs ---------------------------------------------------
def test_cfun_detaches_and_reattaches_with_cereg_urcs(attached):
    module = attached
    assert module.ok("AT+CEREG=2") == []
    assert module.ok("AT+CFUN?") == ["+CFUN:1"]
    assert module.ok("AT+CGATT?") == ["+CGATT:1"]
    assert module.send("AT+CFUN=0").text.splitlines() == ["+CEREG:0", "OK"]
    assert module.ok("AT+CFUN?") == ["+CFUN:0"]
    assert module.ok("AT+CGATT?") == ["+CGATT:0"]
    assert module.send("AT+CFUN=2").final == "+CME ERROR: 50"
    assert module.ok("AT+CFUN=1") == []
    registered = module.wait_line(re.compile(r"\+CEREG:1,.*"), 60)
    urcs = [line.text for line in module.lines_since(module.last_sent_index) if line.text.startswith("+CEREG")]
    assert urcs == ["+CEREG:2", f"+CEREG:1,{CELL_A.tac:04X},{CELL_A.cell_id:08X},9"]
    assert registered.text == "+CEREG:1,0001,0779AC52,9"  # the manual's form: tac and ci in hex, no quotes
    assert module.ok("AT+CFUN?") == ["+CFUN:1"]
    assert module.ok("AT+CGATT?") == ["+CGATT:1"]


def test_cereg_read_form_has_n_first_and_quoted_tac_and_ci(attached):
    module = attached
    module.ok("AT+CEREG=2")
    assert module.ok("AT+CEREG?") == [f'+CEREG:2,1,"{CELL_A.tac:04X}","{CELL_A.cell_id:08X}",9']
    module.ok("AT+CEREG=0")
    assert module.ok("AT+CEREG?") == ["+CEREG:0,1"]
    assert module.send("AT+CEREG=6").final == "+CME ERROR: 50"


def test_ncsearfcn_clears_the_stored_frequency_so_the_next_attach_searches_every_band(attached):
    module = attached
    module.ok("AT+CEREG=1")
    module.ok("AT+CFUN=0")  # saves the serving EARFCN
    started = module.send("AT+CFUN=1").final_s
    stored_search_s = module.wait_line("+CEREG:1", 60).time_s - started
    module.ok("AT+CFUN=0")
    assert module.ok("AT+NCSEARFCN") == []
    started = module.send("AT+CFUN=1").final_s
    full_search_s = module.wait_line("+CEREG:1", 60).time_s - started
    assert stored_search_s < 8.0 < 12.0 < full_search_s


# ---- RRC connection and PSM URCs -----------------------------------------------------------------
def test_cscon_reports_connected_then_released(attached):
    module = attached
    assert module.ok("AT+CSCON=1") == []
    module.wait_released()
    assert module.ok("AT+CSCON?") == ["+CSCON:1,0"]
    sent = module.send_datagram()  # mobile-originated data needs an RRC connection
    assert module.ok("AT+CSCON?") == ["+CSCON:1,1"]
    released = module.wait_line("+CSCON:0", 30, since=sent.since)
    assert released.time_s > sent.connected.time_s
    assert module.ok("AT+CSCON?") == ["+CSCON:1,0"]


def test_cpsms_reads_back_and_npsmr_reports_entering_psm(attached):
    module = attached
    assert module.ok('AT+CPSMS=1,,,"00111000","00001111"') == []  # T3412 24 h, T3324 30 s
    assert module.ok("AT+CPSMS?") == ["+CPSMS:1,,,00111000,00001111"]
    assert module.ok("AT+NPSMR=1") == []
    module.wait_released()
    sent = module.send_datagram()
    released = module.wait_line("+CSCON:0", 30, since=sent.since)
    psm = module.wait_line("+NPSMR:1", 60, since=sent.since)
    assert psm.time_s == pytest.approx(released.time_s + 30.0)
    assert module.ok("AT+NPSMR?") == ["+NPSMR:1,1"]
    assert module.ok("AT+CGATT?") == ["+CGATT:1"]  # PSM keeps the attach
    since = module.mark()
    sent = module.send_datagram()  # data wakes the module: it leaves PSM, then connects
    assert module.find("+NPSMR:0", since).time_s <= sent.connected.time_s
    module.ok('AT+CPSMS=0')
    assert module.ok("AT+CPSMS?")[0].startswith("+CPSMS:0,")
    assert module.send('AT+CPSMS=1,,,"0011100"').final == "+CME ERROR: 50"


# ---- statistics ----------------------------------------------------------------------------------
def test_nuestats_has_13_lines_in_order_in_tenths_consistent_with_the_attenuation(attached):
    module = attached
    module.attenuator.set_attenuation(CELL_A.attenuator_channel, CE0_ATTENUATION_DB)
    lines = module.ok("AT+NUESTATS")
    assert len(lines) == 13
    matches = [NUESTATS_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    stats = {m["key"]: int(m["value"]) for m in matches}
    assert list(stats) == NUESTATS_KEYS
    assert abs(stats["Signal power"] - CE0_SIGNAL_POWER) <= SIGNAL_POWER_TOLERANCE
    assert stats["Total power"] > stats["Signal power"]
    assert stats["TX power"] == 230
    assert stats["Cell ID"] == CELL_A.cell_id
    assert stats["ECL"] == 0
    assert 250 <= stats["SNR"] <= 350  # RSRP -95 dBm against -125.2 dBm of noise: about 30 dB
    assert stats["EARFCN"] == CELL_A.earfcn
    assert stats["PCI"] == CELL_A.pci
    assert -195 <= stats["RSRQ"] <= -30
    assert stats["OPERATOR MODE"] == 4
    assert stats["CURRENT BAND"] == CELL_A.band


def test_nuestats_radio_prefixes_every_line(attached):
    lines = attached.ok("AT+NUESTATS=RADIO")
    assert [line.partition(":")[0] for line in lines] == ["NUESTATS"] * 13
    assert [line.removeprefix("NUESTATS:RADIO,").partition(":")[0] for line in lines] == NUESTATS_KEYS
    fields = (line.removeprefix("NUESTATS:RADIO,").partition(":") for line in lines)
    stats = {key: int(value) for key, _, value in fields}
    assert (stats["EARFCN"], stats["PCI"], stats["Cell ID"]) == (CELL_A.earfcn, CELL_A.pci, CELL_A.cell_id)
    assert abs(stats["Signal power"] - CE0_SIGNAL_POWER) <= SIGNAL_POWER_TOLERANCE


def test_nuestats_cell_lists_the_serving_cell_then_suitable_neighbours(attached):
    module = attached
    assert module.send("AT+NUESTATS=cell").final == "OK"  # the mode is case-insensitive
    lines = module.ok("AT+NUESTATS=CELL")
    assert len(lines) == 1
    earfcn, pci, primary, rsrp, *_ = (int(v) for v in CELL_LINE.fullmatch(lines[0]).groups())
    assert (earfcn, pci, primary) == (CELL_A.earfcn, CELL_A.pci, 1)
    assert abs(rsrp - CE0_SIGNAL_POWER) <= SIGNAL_POWER_TOLERANCE
    module.attenuator.set_attenuation(CELL_B.attenuator_channel, 15.0)  # B at -105 dBm
    try:
        lines = module.ok("AT+NUESTATS=CELL")
    finally:
        module.attenuator.set_attenuation(CELL_B.attenuator_channel, 95.0)
    assert len(lines) == 2 and all(CELL_LINE.fullmatch(line) for line in lines), lines
    earfcn, pci, primary, rsrp, *_ = (int(v) for v in CELL_LINE.fullmatch(lines[1]).groups())
    assert (earfcn, pci, primary) == (CELL_B.earfcn, CELL_B.pci, 0)
    assert abs(rsrp - -1050) <= SIGNAL_POWER_TOLERANCE


def test_nuestats_test_form_lists_the_modes(module):
    assert module.send("AT+NUESTATS=?").text.splitlines() == ["NUESTATS:(RADIO,CELL,BLER,THP,APPSMEM,ALL)", "OK"]


def test_nuestats_before_any_cell_reports_the_not_available_sentinels():
    with module_bench(attenuation_db={}) as module:  # every cell 95 dB away: nothing to camp on
        stats = module.nuestats()
        assert list(stats) == NUESTATS_KEYS
        assert (stats["ECL"], stats["PCI"], stats["Cell ID"], stats["Signal power"]) == (255, 65535, -1, -32768)


# ---- configuration -------------------------------------------------------------------------------
def test_nconfig_read_lists_the_keys_in_the_manuals_order(module):
    assert module.send("AT+NCONFIG?").text.splitlines() == NCONFIG_DEFAULTS


def test_nconfig_refuses_unknown_keys_and_values(module):
    assert module.send("AT+NCONFIG=CELL_RESELECTION,MAYBE").final == "+CME ERROR: 50"
    assert module.send("AT+NCONFIG=NO_SUCH_KEY,TRUE").final == "+CME ERROR: 50"


# ---- errors and line noise -----------------------------------------------------------------------
@pytest.mark.parametrize("command", ["AT+FOO", "AT+CGMR=1", "ATZZ", "AT+NUESTATS?"])
def test_unknown_command_answers_error(module, command):
    assert module.send(command).text == "ERROR"


@pytest.mark.parametrize(
    "command",
    [
        "AT+CFUN=7",
        "AT+CFUN=x",
        "AT+CEREG=9",
        "AT+NUESTATS=NOPE",
        "AT+NSOCR=STREAM,6,5000",
        'AT+CPSMS=1,,,"00111000","0000111"',
        "AT+NSOST=6,127.0.0.1,9999,4,DEADBEEF",
    ],
)
def test_bad_parameters_answer_cme_error_50(module, command):
    assert module.send(command).text == "+CME ERROR: 50"


def test_garbage_on_the_line_is_ignored_and_the_next_command_answers(module):
    since = module.mark()
    module.write_raw(b"\x00\xff\xfe0???\r\n")  # a glitch with its own line end: no answer at all
    assert module.send("AT").text == "OK"
    assert [line.text for line in module.lines_since(since)] == ["OK"]
    module.write_raw(b"\x00\xf8\x11")  # noise right before a command (no line end of its own)
    assert module.send("AT+CGSN=1").text.splitlines() == [f"+CGSN:{DEVICE.identity.imei}", "OK"]


def test_replies_use_the_hi2115_style_without_a_space_after_the_colon(attached):
    module = attached
    module.ok("AT+CEREG=2")
    module.ok("AT+CSCON=1")
    module.ok("AT+NPSMR=1")
    lines: list[str] = []
    for command in ["AT+CFUN?", "AT+CGATT?", "AT+CEREG?", "AT+CSCON?", "AT+CPSMS?", "AT+NPSMR?", "AT+NBAND?",
                    "AT+CGSN=1", "AT+NCONFIG?"]:
        lines += module.ok(command)
    prefixed = [line for line in lines if line.startswith("+")]
    assert len(prefixed) >= 19
    assert all(re.fullmatch(r"\+[A-Z]+:[^ ].*", line) for line in prefixed), prefixed
    assert module.send("AT+CFUN=9").final == "+CME ERROR: 50"  # the result code keeps its space, as on BC95
