"""The RC4DAT attenuator: the twin's command set through pyvisa (real TCP), and the rig's driver on top.

The twin answers as the Mini-Circuits Telnet interface does (CR LF lines, `0`/`1`/`2` set replies,
`:ATT?` listing the four channels separated by two spaces). The driver refuses what the datasheet
does not allow before anything goes on the wire, and confirms every set by its reply and a read-back.
"""

from __future__ import annotations

import math

import pytest

from rig.errors import InstrumentError
from rig.instruments.attenuator import Rc4datAttenuator, check_attenuation


def channels_db(raw) -> list[float]:
    return [float(v) for v in raw.query(":ATT?").split("  ")]


def set_raw(raw, *values_db: float) -> None:
    """Put the four channels at known values through the raw session."""
    for channel, value in enumerate(values_db, start=1):
        assert raw.query(f":CHAN:{channel}:SETATT={value:g}") == "1"


class CountingTransport:
    """Forwards to the bench's transport and records every command that would reach the wire."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.sent: list[str] = []

    def query(self, command: str) -> str:
        self.sent.append(command)
        return self.inner.query(command)

    def write(self, command: str) -> None:
        self.sent.append(command)
        self.inner.write(command)

    def close(self) -> None:  # the bench owns the real session
        pass


class ScriptedTransport:
    """An attenuator that answers from a script (replies the twin, rightly, never gives the driver)."""

    name = "attenuator"

    def __init__(self, replies: dict[str, str]):
        self.replies = replies
        self.sent: list[str] = []

    def query(self, command: str) -> str:
        self.sent.append(command)
        return self.replies[command]

    def close(self) -> None:
        pass


# ---- the command set on the wire ---------------------------------------------------------------
def test_model_and_serial_queries_answer_tagged(sim_raw_attenuator, sim_bench):
    assert sim_raw_attenuator.query(":MN?") == "MN=RC4DAT-6G-95"
    serial = sim_raw_attenuator.query(":SN?")
    assert serial.startswith("SN=") and serial[3:].isdigit()
    assert sim_bench.attenuator.model == "RC4DAT-6G-95"
    assert sim_bench.attenuator.serial == serial[3:]


def test_replies_are_telnet_lines_ending_in_cr_lf(sim_raw_attenuator):
    sim_raw_attenuator.write(":MN?")
    assert sim_raw_attenuator.read_raw() == b"MN=RC4DAT-6G-95\r\n"


def test_setatt_sets_every_channel_and_att_lists_them_separated_by_two_spaces(sim_raw_attenuator):
    assert sim_raw_attenuator.query(":SETATT=12.5") == "1"
    assert sim_raw_attenuator.query(":ATT?") == "12.5  12.5  12.5  12.5"
    assert sim_raw_attenuator.query(":SETATT=0") == "1"
    assert sim_raw_attenuator.query(":ATT?") == "0  0  0  0"


def test_chan_setatt_sets_one_channel_and_chan_att_reads_it(sim_raw_attenuator):
    set_raw(sim_raw_attenuator, 1, 2, 3, 4)
    assert sim_raw_attenuator.query(":CHAN:2:SETATT=30.75") == "1"
    assert sim_raw_attenuator.query(":CHAN:2:ATT?") == "30.75"
    assert channels_db(sim_raw_attenuator) == [1, 30.75, 3, 4]


def test_multi_channel_setatt_sets_only_the_named_channels(sim_raw_attenuator):
    set_raw(sim_raw_attenuator, 1, 2, 3, 4)
    assert sim_raw_attenuator.query(":CHAN:1:3:SETATT:20") == "1"
    assert channels_db(sim_raw_attenuator) == [20, 2, 20, 4]
    assert sim_raw_attenuator.query(":CHAN:1:2:3:4:SETATT:7.25") == "1"
    assert channels_db(sim_raw_attenuator) == [7.25] * 4


def test_above_range_answers_2_and_clamps_to_95(sim_raw_attenuator):
    set_raw(sim_raw_attenuator, 1, 2, 3, 4)
    assert sim_raw_attenuator.query(":CHAN:4:SETATT=96.5") == "2"
    assert channels_db(sim_raw_attenuator) == [1, 2, 3, 95]
    assert sim_raw_attenuator.query(":SETATT=120") == "2"
    assert channels_db(sim_raw_attenuator) == [95] * 4
    assert sim_raw_attenuator.query(":CHAN:1:2:SETATT:100") == "2"


@pytest.mark.parametrize(
    "command",
    [
        ":SETATT=-1",
        ":CHAN:2:SETATT=-0.25",
        ":CHAN:5:SETATT=10",
        ":CHAN:0:SETATT=10",
        ":CHAN:1:5:SETATT:10",
        ":SETATT=ten",
    ],
)
def test_refused_set_answers_0_and_changes_nothing(sim_raw_attenuator, command):
    set_raw(sim_raw_attenuator, 1, 2, 3, 4)
    assert sim_raw_attenuator.query(command) == "0"
    assert channels_db(sim_raw_attenuator) == [1, 2, 3, 4]


@pytest.mark.parametrize(("asked", "held"), [(10.1, "10"), (10.2, "10.25"), (33.37, "33.25"), (94.9, "95")])
def test_values_are_quantised_to_the_quarter_db_step(sim_raw_attenuator, asked, held):
    assert sim_raw_attenuator.query(f":CHAN:3:SETATT={asked}") == "1"
    assert sim_raw_attenuator.query(":CHAN:3:ATT?") == held


def test_unknown_command_is_answered_not_ignored(sim_raw_attenuator):
    assert sim_raw_attenuator.query(":FREQ?") == "Invalid Command"
    assert sim_raw_attenuator.query(":MN?") == "MN=RC4DAT-6G-95"  # the session is still in step


# ---- the driver ----------------------------------------------------------------------------------
def test_driver_sets_one_channel_and_reads_back_what_it_set(sim_bench, sim_raw_attenuator):
    set_raw(sim_raw_attenuator, 1, 2, 3, 4)
    assert sim_bench.attenuator.set_attenuation(2, 47.25) == 47.25
    assert sim_raw_attenuator.query(":CHAN:2:ATT?") == "47.25"
    assert sim_bench.attenuator.attenuation_db(2) == 47.25
    assert sim_bench.attenuator.attenuations_db() == [1, 47.25, 3, 4]


def test_driver_sets_all_channels_with_one_command_and_reads_them_back(sim_bench, sim_raw_attenuator):
    counting = CountingTransport(sim_bench.attenuator.transport)
    Rc4datAttenuator(counting).set_all(62.5)
    assert counting.sent == [":SETATT=62.5", ":ATT?"]
    assert channels_db(sim_raw_attenuator) == [62.5] * 4


@pytest.mark.parametrize("value_db", [-1, 95.25, math.nan, math.inf, 10.1, "10"], ids=repr)
def test_driver_refuses_a_bad_value_before_sending_anything(sim_bench, sim_raw_attenuator, value_db):
    set_raw(sim_raw_attenuator, 1, 2, 3, 4)
    counting = CountingTransport(sim_bench.attenuator.transport)
    driver = Rc4datAttenuator(counting)
    with pytest.raises(ValueError, match="attenuation"):
        driver.set_attenuation(1, value_db)
    with pytest.raises(ValueError, match="attenuation"):
        driver.set_all(value_db)
    assert counting.sent == []
    assert channels_db(sim_raw_attenuator) == [1, 2, 3, 4]


@pytest.mark.parametrize("channel", [0, 5, -1, "1"], ids=repr)
def test_driver_refuses_a_channel_that_does_not_exist_before_sending_anything(sim_bench, sim_raw_attenuator, channel):
    set_raw(sim_raw_attenuator, 1, 2, 3, 4)
    counting = CountingTransport(sim_bench.attenuator.transport)
    driver = Rc4datAttenuator(counting)
    with pytest.raises(ValueError, match="channel"):
        driver.set_attenuation(channel, 10)
    with pytest.raises(ValueError, match="channel"):
        driver.attenuation_db(channel)
    assert counting.sent == []
    assert channels_db(sim_raw_attenuator) == [1, 2, 3, 4]


def test_check_attenuation_accepts_the_whole_range_on_the_step():
    assert check_attenuation(0) == 0
    assert check_attenuation(95) == 95
    assert check_attenuation(0.25) == 0.25
    assert check_attenuation(30.75) == 30.75


@pytest.mark.parametrize(
    ("reply", "meaning"), [("0", "failed"), ("2", "above range"), ("", "unexpected"), ("Invalid Command", "unexpected")]
)
def test_a_set_reply_other_than_1_raises_instrument_error_naming_the_command(reply, meaning):
    script = ScriptedTransport({":CHAN:1:SETATT=10": reply, ":SETATT=10": reply})
    driver = Rc4datAttenuator(script)
    with pytest.raises(InstrumentError, match=rf"attenuator: :CHAN:1:SETATT=10 answered .*{meaning}"):
        driver.set_attenuation(1, 10)
    with pytest.raises(InstrumentError, match=rf"attenuator: :SETATT=10 answered .*{meaning}"):
        driver.set_all(10)
    assert script.sent == [":CHAN:1:SETATT=10", ":SETATT=10"]  # no read-back after a refused set


def test_a_read_back_that_differs_raises_instrument_error_naming_the_command():
    script = ScriptedTransport(
        {":CHAN:1:SETATT=10": "1", ":CHAN:1:ATT?": "9.75", ":SETATT=10": "1", ":ATT?": "10  10  9.75  10"}
    )
    driver = Rc4datAttenuator(script)
    with pytest.raises(InstrumentError, match=r":CHAN:1:SETATT=10 read back 9\.75"):
        driver.set_attenuation(1, 10)
    with pytest.raises(InstrumentError, match=r":SETATT=10 read back"):
        driver.set_all(10)


def test_a_garbled_value_reply_raises_instrument_error_naming_the_query():
    driver = Rc4datAttenuator(ScriptedTransport({":CHAN:2:ATT?": "Invalid Command", ":ATT?": "1  x", ":MN?": "?"}))
    with pytest.raises(InstrumentError, match=r":CHAN:2:ATT\?"):
        driver.attenuation_db(2)
    with pytest.raises(InstrumentError, match=r":ATT\?"):
        driver.attenuations_db()
    with pytest.raises(InstrumentError, match=r":MN\?"):
        _ = driver.model
