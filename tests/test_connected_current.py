"""C3's charge saved is measured on the trace: the connected-mode current of a report's own connection
without its TX bursts (DRX on-durations and the quiet between them averaged), never a device profile's figure."""

from __future__ import annotations

import math

import numpy as np

from rig.analysis.energy import charge_saved_uah, connected_current_a
from rig.analysis.trace import Trace

PERIOD_S = 0.01


def drx_connection(on_a: float, off_a: float, duty: float, cycle_s: float, seconds: float,
                   tx_a: float = 0.0, tx_at_s: tuple[float, ...] = (), tx_s: float = 0.1) -> Trace:
    """A connection in connected-mode DRX (on for `duty` of every `cycle_s`), with TX bursts at `tx_at_s`."""
    times = np.arange(int(round(seconds / PERIOD_S))) * PERIOD_S
    amps = np.where((times % cycle_s) < duty * cycle_s, on_a, off_a)
    for start in tx_at_s:
        amps[(times >= start) & (times < start + tx_s)] = tx_a
    return Trace(0.0, PERIOD_S, amps)


def test_the_connected_current_is_the_drx_average_without_the_tx_bursts() -> None:
    trace = drx_connection(0.064, 0.004, 0.25, 0.32, 3.2, tx_a=0.18, tx_at_s=(0.5, 1.3))
    measured = connected_current_a(trace, 0.0, 3.2, tx_above_a=0.075)
    assert math.isclose(measured, 0.25 * 0.064 + 0.75 * 0.004, rel_tol=0.05)


def test_a_flat_connected_current_is_itself() -> None:
    trace = drx_connection(0.05, 0.05, 1.0, 1.0, 2.0, tx_a=0.2, tx_at_s=(0.2,))
    assert math.isclose(connected_current_a(trace, 0.0, 2.0, tx_above_a=0.075), 0.05)


def test_only_the_span_counts_and_an_empty_or_all_tx_span_is_nan() -> None:
    trace = Trace(0.0, PERIOD_S, np.concatenate([np.full(100, 0.002), np.full(100, 0.05), np.full(100, 0.2)]))
    assert math.isclose(connected_current_a(trace, 1.0, 3.0, tx_above_a=0.075), 0.05)
    assert math.isnan(connected_current_a(trace, 2.0, 3.0, tx_above_a=0.075))
    assert math.isnan(connected_current_a(trace, 2.0, 2.0, tx_above_a=0.075))


def test_the_saving_is_the_rest_of_the_timer_at_the_connected_current() -> None:
    assert math.isclose(charge_saved_uah(20.0, 0.5, 0.05), 19.5 * 0.05 / 3600 * 1e6)
    assert charge_saved_uah(20.0, 21.0, 0.05) == 0.0
