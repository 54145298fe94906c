"""Property tests of the rig's AT reader: the line assembler of every serial port, a module command's reply
and the monitor transcript's parsers. Whatever bytes a module, an MCU or a broken cable sends, they return
lines and readings or nothing, never raise, and hold at most a line's cap in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from rig.analysis.at_transcript import attempts, boots, nuestats_answers, says_attached
from rig.analysis.downlinks import delivered_on_monitor
from rig.analysis.meter_log import parse_log_text
from rig.codec.reference import ReferenceCodec
from rig.level_confirmation import network_from_nuestats
from rig.module_session import is_final, reply_in
from rig.monitor import MCU, MODULE, MonitorLine
from rig.ports import LineAssembler, StampedLine
from tests.property_settings import property_settings

LIMIT = 48  # a small cap so that the examples reach it
VALVE = ReferenceCodec().encode_downlink({"type": "valve", "command_id": 7, "action": "close"}).hex().upper()
AT_WORDS = ["OK", "ERROR", "+CME ERROR: 50", "+CME ERROR:", "+CSCON:1", "+CEREG:1", "+CEREG:2,5,\"1A\"",
            "+CGATT:1", "Signal power:-1054", "ECL:2", "SNR:-58", "PCI:301", "EARFCN:2506", "AT+NUESTATS",
            "REBOOT_CAUSE_SECURITY_PMU_POWER_ON_RESET", "AT+QLWULDATAEX=3,0101FF,0x0000", "AT+NMGS=2,01",
            "AT+NMGS=1,0", "AT+QLWULDATAEX=99999999999999999999,", "\xff\x00", "", f"+NNMI:5,{VALVE}",
            f"+NNMI:5,{VALVE[:-1]}", "+NNMI:", "+NNMI:1,", "+NNMI:,zz", "1767542400|maintenance|login|",
            "nan|a|b|c|d", "12|x"]
TERMINATORS = [b"\r", b"\n", b"\r\n", b"\n\r", b"\r\n\r\n"]

texts = st.one_of(st.sampled_from(AT_WORDS), st.text(st.characters(max_codepoint=255), max_size=80))
pieces = st.one_of(
    st.binary(max_size=120),
    st.sampled_from(TERMINATORS),
    texts.map(lambda text: text.encode("latin-1")),
)
streams = st.lists(pieces, max_size=40).map(b"".join)


def expected_lines(stream: bytes, limit: int) -> tuple[list[tuple[str, int]], bytes]:
    """What the assembler must give for `stream`: (text, overflow) per ended line, and the unended rest."""
    *ended, rest = re.split(rb"[\r\n]+", stream)
    lines = [(piece[:limit].decode("latin-1"), max(len(piece) - limit, 0)) for piece in ended if piece]
    return lines, rest


@property_settings()
@given(stream=streams, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_assembler_gives_the_same_lines_however_the_bytes_are_chunked(stream: bytes, cuts: list[int]) -> None:
    got: list[StampedLine] = []
    assembler = LineAssembler("at", got.append, limit=LIMIT)
    bounds = sorted({0, len(stream), *(cut % (len(stream) + 1) for cut in cuts)})
    for time_s, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        assembler.feed(stream[start:end], float(time_s))
        assert assembler.pending_bytes <= LIMIT
    lines, rest = expected_lines(stream, LIMIT)
    assert [(line.text, line.overflow_bytes) for line in got] == lines
    assert assembler.pending_bytes == min(len(rest), LIMIT)
    assert assembler.overflows == sum(1 for _, overflow in lines if overflow) + (len(rest) > LIMIT)


@property_settings()
@given(stream=streams, chunk_times=st.lists(st.floats(0, 1e9, allow_nan=False), min_size=1, max_size=8))
def test_a_line_carries_the_time_of_the_chunk_that_ended_it(stream: bytes, chunk_times: list[float]) -> None:
    got: list[StampedLine] = []
    assembler = LineAssembler("monitor_mcu", got.append, limit=LIMIT)
    size = -(-len(stream) // len(chunk_times)) or 1
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    ended_at = []
    for chunk, time_s in zip(chunks, chunk_times, strict=False):
        before = len(got)
        assembler.feed(chunk, time_s)
        ended_at += [time_s] * (len(got) - before)
    assert [line.time_s for line in got] == ended_at
    assert all(line.channel == "monitor_mcu" and line.text for line in got)


def test_an_endless_line_costs_at_most_the_cap_and_its_end_says_how_much_was_cut() -> None:
    got: list[StampedLine] = []
    assembler = LineAssembler("at", got.append)
    chunk = b"A" * 65536
    for index in range(160):  # 10 MiB without a terminator
        assembler.feed(chunk, float(index))
        assert assembler.pending_bytes <= assembler.limit
    assert got == [] and assembler.overflows == 1
    assembler.feed(b"\r\nOK\r\n", 200.0)
    assert [(len(line.text), line.overflow_bytes) for line in got] == [(assembler.limit, 160 * 65536 - assembler.limit),
                                                                       (2, 0)]


lines_of_text = st.lists(st.builds(lambda text, time_s: StampedLine(time_s, "at", text),
                                   texts, st.floats(0, 1e9, allow_nan=False)), max_size=30)


@property_settings()
@given(lines=lines_of_text)
def test_a_reply_ends_at_its_first_final_line_and_keeps_every_line_before_it(lines: list[StampedLine]) -> None:
    reply = reply_in(lines)
    finals = [index for index, line in enumerate(lines) if is_final(line.text)]
    if not finals:
        assert reply is None
        return
    end = finals[0]
    assert reply is not None
    assert (reply.lines, reply.final, reply.time_s) == ([line.text for line in lines[:end]], lines[end].text,
                                                        lines[end].time_s)
    assert reply.ok == (lines[end].text == "OK")
    assert reply.value("+CGATT:") in (None, *(line.text[7:] for line in lines[:end]))


monitor_transcripts = st.lists(st.tuples(st.sampled_from([MCU, MODULE]), texts), max_size=40).map(
    lambda rows: [MonitorLine(index, float(index), sender, text) for index, (sender, text) in enumerate(rows)]
)


@property_settings()
@given(lines=monitor_transcripts)
def test_transcript_readers_take_any_transcript(lines: list[MonitorLine]) -> None:
    codec = ReferenceCodec()
    for attempt in attempts(lines, codec, kinds=()):
        assert lines[attempt.index].sender == MCU
        assert attempt.answer is None or is_final(attempt.answer)
    for command, reply in nuestats_answers(lines):
        assert command.text.strip().upper() == "AT+NUESTATS"
        network = network_from_nuestats(reply)
        assert network is None or isinstance(network["rsrp_dbm"], float)
    assert all(line.sender == MODULE for line in boots(lines))
    assert all(isinstance(says_attached(line.text), bool) for line in lines)
    ticket = Ticket({"type": "valve", "command_id": 7, "action": "close"})
    delivered = delivered_on_monitor(lines, codec, [ticket])
    assert [delivery.time_s for delivery in delivered] == [
        line.time_s for line in lines if line.sender == MODULE and line.text == f"+NNMI:5,{VALVE}"]


@dataclass
class Ticket:
    """What the downlink analysis reads of a platform ticket."""

    message: dict
    answered_at: float | None = None


@property_settings()
@given(text=st.lists(texts, max_size=12).map("\n".join))
def test_a_log_download_parses_or_names_its_bad_line(text: str) -> None:
    try:
        entries = parse_log_text(text)
    except ValueError as error:
        assert str(error).startswith("log line ")
        return
    assert len(entries) == sum(1 for line in text.splitlines() if line)


@property_settings()
@given(reply=st.lists(texts, max_size=12))
def test_nuestats_reading_is_a_network_block_or_none(reply: list[str]) -> None:
    network = network_from_nuestats(reply)
    if network is not None:
        assert set(network) == {"pci", "rsrp_dbm", "sinr_db", "ecl", "earfcn"}
        assert network["pci"] != 65535 and network["ecl"] != 255
