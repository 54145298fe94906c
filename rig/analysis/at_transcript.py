"""Reading the AT monitor's transcript: uplink attempts and their answers, boots, attaches, queries.

Everything here works on `MonitorLine`s alone (what a UART sniffer on hardware gives too), so the
suites and the project's tests judge the same evidence the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rig.codec import Codec
from rig.monitor import MCU, MODULE, MonitorLine

POWER_ON_CAUSE = "REBOOT_CAUSE_SECURITY_PMU_POWER_ON_RESET"
FINAL_RESULT = re.compile(r"^(OK|ERROR|\+CME ERROR: ?\d+)$")
SEND = re.compile(r"^AT\+(?:QLWULDATAEX|NMGS)=(\d+),([0-9A-Fa-f]*)")
QUERIES = {"AT", "ATI", "AT+CGMR", "AT+NUESTATS", "AT+NQMGS", "AT+NQMGR", "AT+CGSN", "AT+CIMI"}


@dataclass(frozen=True)
class Attempt:
    """One uplink attempt the MCU started: its command on the monitor and the module's answer."""

    time_s: float
    index: int
    command: str
    kind: str | None  # the decoded message's type; None when the codec refuses the payload
    answer: str | None  # OK, ERROR or +CME ERROR: <n>; None when the module said nothing
    answer_s: float | None


def answer(lines: list[MonitorLine], index: int) -> MonitorLine | None:
    """The module's final result for the MCU command at `index` (before the MCU's next line). Reads forward from
    `index` without copying the rest of the transcript (a month's transcript holds tens of thousands of lines)."""
    for position in range(index + 1, len(lines)):
        line = lines[position]
        if line.sender == MCU:
            return None
        if FINAL_RESULT.match(line.text):
            return line
    return None


def attempts(lines: list[MonitorLine], codec: Codec, kinds: tuple[str, ...] = ("basic_report",)) -> list[Attempt]:
    """The MCU's uplink commands (`AT+QLWULDATAEX`, `AT+NMGS`) whose payload decodes to one of `kinds`
    (every attempt when `kinds` is empty)."""
    found = []
    for line in lines:
        match = SEND.match(line.text) if line.sender == MCU else None
        if match is None:
            continue
        try:
            kind = codec.decode_uplink(bytes.fromhex(match.group(2))).get("type")
        except Exception:  # noqa: BLE001 - a payload the codec refuses is still an attempt, of no known kind
            kind = None
        if kinds and kind not in kinds:
            continue
        final = answer(lines, line.index)
        found.append(Attempt(line.time_s, line.index, line.text, kind, final.text if final else None,
                             final.time_s if final else None))
    return found


def commands(lines: list[MonitorLine], start: int = 0, end: int | None = None) -> list[MonitorLine]:
    """The MCU's AT commands between two indices."""
    return [line for line in lines[start:end] if line.is_command]


def is_query(command: str) -> bool:
    """Read-only commands, allowed anywhere in a flow."""
    text = command.upper()
    return text.endswith("?") or text in QUERIES or text.startswith("AT+NUESTATS")


def boots(lines: list[MonitorLine], cause: str | None = None) -> list[MonitorLine]:
    """The module's boot banners (their REBOOT_CAUSE_ line), optionally of one cause."""
    return [line for line in lines if line.sender == MODULE and line.text.startswith("REBOOT_CAUSE_")
            and (cause is None or line.text == cause)]


def first_after(lines: list[MonitorLine], index: int, test: Callable[[MonitorLine], bool]) -> MonitorLine | None:
    """The first line after `index` that passes `test`."""
    return next((line for line in lines[index + 1:] if test(line)), None)


def says_attached(text: str) -> bool:
    """`+CGATT:1`, or a `+CEREG` with stat 1 or 5: the URC `+CEREG:<stat>[,<tac>,...]` or the read reply
    `+CEREG:<n>,<stat>[,...]` (told apart by the second field: a one-digit stat, or a tac)."""
    if text == "+CGATT:1":
        return True
    if not text.startswith("+CEREG:"):
        return False
    fields = [f.strip().strip('"') for f in text.removeprefix("+CEREG:").split(",")]
    stat = fields[1] if len(fields) > 1 and len(fields[1]) == 1 else fields[0]
    return stat in ("1", "5")


def attached_between(lines: list[MonitorLine], start: int, end: int) -> bool:
    """The module said it is attached between two indices."""
    return any(line.sender == MODULE and says_attached(line.text) for line in lines[start:end])


def config_reboot(lines: list[MonitorLine], command: MonitorLine) -> bool:
    """An AT+NRB that applies the AT+NCONFIG just before it (queries aside): configuration, not a give-up."""
    previous = [line for line in commands(lines, 0, command.index) if not is_query(line.text)]
    return bool(previous) and previous[-1].text.upper().startswith("AT+NCONFIG=")


def nuestats_answers(lines: list[MonitorLine], start: int = 0) -> list[tuple[MonitorLine, list[str]]]:
    """Each `AT+NUESTATS` the MCU sent from `start`, with the module's reply lines up to its final result
    (the device's own radio reading, seen passively on the sniffer)."""
    found = []
    for index in range(start, len(lines)):
        line = lines[index]
        if line.sender != MCU or line.text.strip().upper() != "AT+NUESTATS":
            continue
        reply = []
        for later in lines[index + 1:]:
            if later.sender == MCU:
                break  # unanswered
            if FINAL_RESULT.match(later.text):
                found.append((line, reply))
                break
            reply.append(later.text)
    return found
