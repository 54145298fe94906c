"""Judging the platform's downlinks and the meter's answers (C6, C18, C19, C20): pure functions on tickets,
uplinks and current means, so the suites and the project's tests judge the same evidence the same way.

A ticket here is anything with the platform `Ticket`'s fields (`message`, `queued_at`, `answered_at`,
`answer`); an uplink anything with `time_s` and a decoded `message`. Configuration is judged in the order
the meter received the commands: the `+NNMI` downlinks on the AT monitor, where a command the platform
sent again (its ACK lost, the meter already asleep) lands again after later ones; without a monitor,
the platform's queue order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rig.codec import Codec
from rig.monitor import MODULE, MonitorLine

DAY_S = 86400.0
WHOLE_SECOND_S = 1.0  # a meter's clock in its messages is whole seconds


class TicketLike(Protocol):
    message: dict
    queued_at: float
    answered_at: float | None
    answer: dict | None


class UplinkLike(Protocol):
    time_s: float
    message: dict | None


# ---- answers ---------------------------------------------------------------------------------------


def answer_delay_s(ticket: TicketLike) -> float:
    """Queue to answer (the platform's reception of the meter's response); NaN while unanswered."""
    return ticket.answered_at - ticket.queued_at if ticket.answered_at is not None else math.nan


def fraction_within(delays_s: Sequence[float], within_s: float) -> float:
    """The share of `delays_s` no longer than `within_s` (an unanswered NaN counts as late)."""
    if not delays_s:
        return math.nan
    return sum(1 for delay in delays_s if delay <= within_s) / len(delays_s)


def status_of(ticket: TicketLike) -> str:
    """The meter's status for the command (`ok`, `refused`, `unknown`), or `unanswered`."""
    return ticket.answer.get("status", "?") if ticket.answer is not None else "unanswered"


def point_read_judged(ticket: TicketLike, window_s: float = DAY_S) -> bool:
    """C18: answered within `window_s` of queueing, executed, with a reading."""
    return (ticket.answered_at is not None and ticket.answered_at - ticket.queued_at <= window_s
            and status_of(ticket) == "ok" and "cumulative_l" in (ticket.answer.get("value") or {}))


def first_after(uplinks: Iterable[UplinkLike], time_s: float, kind: str | None = None) -> UplinkLike | None:
    """The first uplink received after `time_s` (of type `kind` when given)."""
    return next((u for u in sorted(uplinks, key=lambda u: u.time_s) if u.time_s > time_s and u.message is not None
                 and (kind is None or u.message["type"] == kind)), None)


def wake_uplink(uplinks: Iterable[UplinkLike], ticket: TicketLike) -> UplinkLike | None:
    """The meter's first uplink after the command was queued: the wake that fetched it."""
    return first_after(uplinks, ticket.queued_at)


# ---- C6 time sync ----------------------------------------------------------------------------------


def clock_residual_s(meter_clock_s: float, asked_s: float, answered_s: float) -> float:
    """The meter's clock read over the near-end port minus the bench's time in the middle of the exchange."""
    return meter_clock_s - (asked_s + answered_s) / 2.0


def sync_residual_s(sync_sent_s: float, response_s: float, shown_s: float) -> float:
    """How far the clock a meter shows in its response lies outside [sync sent, response received].

    The response is built after the sync was applied and before it reached the platform, so a meter that
    follows the platform shows a time between the two (a second allowed for whole seconds): 0.0 then.
    """
    low, high = sync_sent_s - WHOLE_SECOND_S, response_s + WHOLE_SECOND_S
    return 0.0 if low <= shown_s <= high else min(abs(shown_s - low), abs(shown_s - high))


def report_skews_s(reports: Iterable[UplinkLike]) -> list[float]:
    """Each report's own clock (`time_s`) minus the platform's reception time."""
    return [r.message["time_s"] - r.time_s for r in reports]


# ---- C19 configuration -----------------------------------------------------------------------------


def fleet_size(writes: int, days: int, daily_fraction_max: float) -> int:
    """The smallest fleet in which `writes` over `days`, spread evenly, configure at most the daily fraction."""
    return math.ceil(math.ceil(writes / days) / daily_fraction_max)


def write_times_s(rng: random.Random, writes: int, days: int, start_s: float) -> list[float]:
    """`writes` times spread evenly over `days` days from `start_s` (the day's share, at random in its day)."""
    times = []
    for day in range(days):
        count = round((day + 1) * writes / days) - round(day * writes / days)
        times += sorted(start_s + (day + rng.random()) * DAY_S for _ in range(count))
    return times


def configuration_commands(rng: random.Random, count: int, values: dict[str, Sequence[object]],
                           query_share: float) -> list[dict]:
    """`count` config writes and queries on `values`' keys, each write a value from the key's list."""
    commands = []
    for _ in range(count):
        key = rng.choice(sorted(values))
        if rng.random() < query_share:
            commands.append({"type": "config_query", "key": key})
        else:
            commands.append({"type": "config_write", "key": key, "value": rng.choice(list(values[key]))})
    return commands


@dataclass(frozen=True)
class Delivery:
    """A command as the meter received it: when, and its ticket."""

    time_s: float
    ticket: TicketLike


def delivered_on_monitor(lines: Iterable[MonitorLine], codec: Codec, tickets: Sequence[TicketLike]
                         ) -> list[Delivery]:
    """Each `+NNMI:<length>,<hex>` the module handed the MCU that carries one of `tickets`, in order (a
    command sent twice is there twice)."""
    by_id = {t.message["command_id"]: t for t in tickets}
    found = []
    for line in lines:
        if line.sender != MODULE or not line.text.startswith("+NNMI:") or "," not in line.text:
            continue
        try:
            command_id = codec.decode_downlink(bytes.fromhex(line.text.split(",", 1)[1]))["command_id"]
        except (ValueError, KeyError):  # CodecError is a ValueError: someone else's bytes
            continue
        if command_id in by_id:
            found.append(Delivery(line.time_s, by_id[command_id]))
    return found


def delivered_in_queue_order(tickets: Sequence[TicketLike]) -> list[Delivery]:
    """Without a monitor: the platform's order (first in, first out), each command at its answer."""
    return [Delivery(t.answered_at, t) for t in tickets if t.answered_at is not None]


def delivery_order(lines: Iterable[MonitorLine] | None, codec: Codec, tickets: Sequence[TicketLike]
                   ) -> tuple[list[Delivery], str]:
    """The monitor's order where it shows every answered command, else the queue order; and which it is."""
    if lines is not None:
        seen = delivered_on_monitor(lines, codec, tickets)
        shown = {id(d.ticket) for d in seen}
        if all(id(t) in shown for t in tickets if t.answered_at is not None):
            return seen, "as received (+NNMI on the AT monitor)"
    return delivered_in_queue_order(tickets), "in the platform's queue order"


@dataclass(frozen=True)
class Mismatch:
    """A value the meter showed for `key` that is not the one last written (`expected`)."""

    key: str
    expected: object
    shown: object
    where: str


def query_mismatches(deliveries: Sequence[Delivery], baseline: dict[str, object]) -> list[Mismatch]:
    """Queries answered with another value than the last write executed before them (a query is judged
    at its first delivery, the one it was answered at), starting from `baseline`."""
    expected = dict(baseline)
    judged: set[int] = set()
    found = []
    for delivery in deliveries:
        ticket, message = delivery.ticket, delivery.ticket.message
        if message["type"] == "config_write" and status_of(ticket) == "ok":
            expected[message["key"]] = message["value"]
        elif message["type"] == "config_query" and status_of(ticket) == "ok" and id(ticket) not in judged:
            judged.add(id(ticket))
            shown = (ticket.answer.get("value") or {}).get(message["key"])
            if shown != expected.get(message["key"]):
                found.append(Mismatch(message["key"], expected.get(message["key"]), shown,
                                      f"query {message['command_id']}"))
    return found


def last_written(deliveries: Sequence[Delivery], baseline: dict[str, object], before_s: float = math.inf
                 ) -> dict[str, object]:
    """The configuration the executed writes delivered before `before_s` leave, from `baseline`."""
    values = dict(baseline)
    for delivery in deliveries:
        message = delivery.ticket.message
        if message["type"] == "config_write" and status_of(delivery.ticket) == "ok" and delivery.time_s < before_s:
            values[message["key"]] = message["value"]
    return values


def config_mismatches(deliveries: Sequence[Delivery], baseline: dict[str, object], shown: dict[str, object],
                      where: str) -> list[Mismatch]:
    """Keys written whose value in `shown` (e.g. the configuration read over the near-end port) differs."""
    expected = last_written(deliveries, baseline)
    written = {d.ticket.message["key"] for d in deliveries if d.ticket.message["type"] == "config_write"}
    return [Mismatch(key, expected[key], shown.get(key), where) for key in sorted(written)
            if shown.get(key) != expected[key]]


def report_mismatches(reports: Iterable[UplinkLike], deliveries: Sequence[Delivery], baseline: dict[str, object],
                      key: str) -> list[Mismatch]:
    """Reports whose field `key` is not the value last written before the report (a report is built before
    the downlinks of its own wake arrive, so a write delivered after it shows in the next one)."""
    found = []
    for report in reports:
        expected = last_written(deliveries, baseline, before_s=report.time_s)[key]
        if report.message.get(key) != expected:
            found.append(Mismatch(key, expected, report.message.get(key), f"report at {report.time_s:.0f}"))
    return found


# ---- C20 valve ---------------------------------------------------------------------------------------


def longest_pulse_s(mean_a: np.ndarray, period_s: float, above_a: float) -> float:
    """The longest run of logging periods whose mean is above `above_a`."""
    longest = run = 0
    for high in np.asarray(mean_a) > above_a:
        run = run + 1 if high else 0
        longest = max(longest, run)
    return longest * period_s


def required_valve_outcome(action: str, close_allowed: bool) -> tuple[str, str | None]:
    """C20: the reply a valve command must get and the state it leaves (None: unchanged), by the profile."""
    if action == "close" and not close_allowed:
        return "refused", None
    return "ok", "closed" if action == "close" else "open"
