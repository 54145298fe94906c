"""The N6705C power analyser: the twin's SCPI through pyvisa (real TCP), and the rig's driver on top.

The twin's supply powers a programmed load (`SIM:LOAD <t>,<amps>,...` on the control port), so every
capture and data log is checked against the exact integral of a known current program: a sample is
the mean current over its interval, within the twin's noise (20 nA + 0.1 % of the value, 1 sigma).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from rig.errors import InstrumentError
from rig.instruments.power import MAX_POINTS, N6705CPowerAnalyser

TINT_BASE_S = 5.12e-6
MEAS_WINDOW_S = 1024 * 20.48e-6
NOISE_SIGMAS = 6.0


def noise_bound(expected_a: np.ndarray | float) -> np.ndarray:
    """What a sample may differ from the exact mean: 6 sigma of the twin's noise, plus float32 rounding."""
    expected = np.abs(np.asarray(expected_a, dtype=float))
    return NOISE_SIGMAS * (20e-9 + 0.001 * expected) + 1e-7 * expected


def charge_bound(expected_a: np.ndarray, interval_s: float) -> float:
    """What a capture's total charge may differ from the exact integral: 6 sigma of the summed noise."""
    sigma_a = 20e-9 + 0.001 * np.abs(expected_a)
    return NOISE_SIGMAS * interval_s * float(np.sqrt(np.sum(sigma_a**2)))


def charge_until(t_s: np.ndarray, steps: list[tuple[float, float]]) -> np.ndarray:
    """Exact charge of a piecewise-constant program (time, amps) from its first step up to each t."""
    t_s = np.asarray(t_s, dtype=float)
    charge = np.zeros_like(t_s)
    ends = [time for time, _ in steps[1:]] + [math.inf]
    for (start, amps), end in zip(steps, ends, strict=True):
        charge += amps * np.clip(np.minimum(t_s, end) - start, 0.0, None)
    return charge


def interval_means(start_s: float, interval_s: float, count: int, steps: list[tuple[float, float]]) -> np.ndarray:
    """Mean of the program over each of `count` intervals from `start_s` (times relative to the same origin)."""
    edges = start_s + interval_s * np.arange(count + 1)
    return np.diff(charge_until(edges, steps)) / interval_s


def next_error(raw) -> str:
    return raw.query("SYST:ERR?")


def error_code(raw) -> int:
    return int(next_error(raw).split(",", 1)[0])


class CountingTransport:
    """Forwards to the bench's supply transport and records every command that reaches the wire."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.sent: list[str] = []

    def write(self, command: str) -> None:
        self.sent.append(command)
        self.inner.write(command)

    def query(self, command: str) -> str:
        self.sent.append(command)
        return self.inner.query(command)

    def query_float32_block(self, command: str, big_endian: bool = True) -> np.ndarray:
        self.sent.append(command)
        return self.inner.query_float32_block(command, big_endian)

    def close(self) -> None:  # the bench owns the real session
        pass


@pytest.fixture(autouse=True)
def clean_supply(sim_bench, sim_raw_supply):
    """Each test starts with an empty error queue, the profile's voltage and the output on."""
    sim_raw_supply.write("*CLS")
    sim_raw_supply.write("VOLT 3.6,(@1)")
    sim_raw_supply.write("OUTP ON,(@1)")
    yield
    assert next_error(sim_raw_supply) == '+0,"No error"', "the test left an error in the queue"


def program_load(bench, *steps: tuple[float, float]) -> None:
    """Program the load: from each absolute time on it draws the given current (0 A before the first)."""
    text = ",".join(f"{t!r},{amps!r}" for t, amps in steps)
    assert bench.twin_link.query(f"SIM:LOAD {text}") == "OK"


def raw_capture(raw, bench, points: int, interval_s: float = TINT_BASE_S) -> float:
    """Start an immediate capture through the raw session; returns its trigger time."""
    for command in (
        f"SENS:SWE:POIN {points},(@1)",
        f"SENS:SWE:TINT {interval_s},(@1)",
        "SENS:SWE:OFFS:POIN 0,(@1)",
        "TRIG:ACQ:SOUR IMM,(@1)",
    ):
        raw.write(command)
    started_s = bench.clock.now()
    raw.write("INIT:ACQ (@1)")
    return started_s


def condition(raw) -> int:
    return int(raw.query("STAT:OPER:COND? (@1)"))


def wait_for_completion(raw, bench, timeout_s: float = 10.0) -> None:
    assert bench.clock.wait_until(lambda: not condition(raw) & 32, timeout_s=timeout_s)


# ---- identity, errors, source ----------------------------------------------------------------------
def test_idn_names_a_keysight_n6705c(sim_raw_supply, sim_bench):
    maker, model, serial, firmware = sim_raw_supply.query("*IDN?").split(",")
    assert (maker, model) == ("Keysight Technologies", "N6705C")
    assert serial.startswith("MY") and firmware == "E.02.09.3271"
    assert sim_bench.supply.identity() == sim_raw_supply.query("*IDN?")


def test_error_queue_says_no_error_and_reports_an_undefined_header_as_minus_113(sim_raw_supply):
    assert next_error(sim_raw_supply) == '+0,"No error"'
    sim_raw_supply.write("SOUR:FROB 1,(@1)")
    sim_raw_supply.write("FROB?")  # a failing query sends no reply: the next reply is SYST:ERR?'s
    assert next_error(sim_raw_supply).startswith('-113,"Undefined header')
    assert next_error(sim_raw_supply).startswith('-113,"Undefined header')
    assert next_error(sim_raw_supply) == '+0,"No error"'
    assert sim_raw_supply.query("SYSTEM:ERROR:NEXT?") == '+0,"No error"'  # long form


def test_voltage_is_set_and_read_back_and_out_of_range_is_refused(sim_raw_supply):
    sim_raw_supply.write("VOLT 3.3,(@1)")
    assert float(sim_raw_supply.query("VOLT? (@1)")) == pytest.approx(3.3)
    sim_raw_supply.write("SOURCE:VOLTAGE:LEVEL 3.4,(@1)")
    assert float(sim_raw_supply.query("VOLT? (@1)")) == pytest.approx(3.4)
    sim_raw_supply.write("VOLT 25,(@1)")
    assert error_code(sim_raw_supply) == -222
    assert float(sim_raw_supply.query("VOLT? (@1)")) == pytest.approx(3.4)


def test_current_limit_is_set_and_read_back_and_out_of_range_is_refused(sim_raw_supply, sim_bench):
    sim_raw_supply.write("CURR:LIM 0.2,(@1)")
    assert float(sim_raw_supply.query("CURR:LIM? (@1)")) == pytest.approx(0.2)
    sim_raw_supply.write("CURR:LIM 5,(@1)")
    assert error_code(sim_raw_supply) == -222
    assert float(sim_raw_supply.query("CURR:LIM? (@1)")) == pytest.approx(0.2)
    sim_bench.supply.set_current_limit(0.5)
    assert float(sim_raw_supply.query("CURR:LIM? (@1)")) == pytest.approx(0.5)


def test_output_on_off_is_read_back_and_measured_voltage_follows_it(sim_raw_supply, sim_bench):
    sim_raw_supply.write("OUTP OFF,(@1)")
    assert sim_raw_supply.query("OUTP? (@1)") == "0"
    assert float(sim_raw_supply.query("MEAS:VOLT? (@1)")) == 0.0
    assert not sim_bench.supply.output_on()
    sim_raw_supply.write("OUTP ON,(@1)")
    assert sim_raw_supply.query("OUTP? (@1)") == "1"
    assert float(sim_raw_supply.query("MEAS:VOLT? (@1)")) == pytest.approx(3.6)
    assert sim_bench.supply.measure_voltage_v() == pytest.approx(3.6)
    sim_bench.supply.set_output(False)
    assert sim_raw_supply.query("OUTP? (@1)") == "0"
    sim_raw_supply.write("OUTP 1,(@1)")
    assert sim_bench.supply.output_on()


def test_measured_current_is_the_mean_over_the_last_measurement_window(sim_raw_supply, sim_bench):
    sim_raw_supply.write("OUTP OFF,(@1)")
    sim_bench.clock.sleep(0.1)
    program_load(sim_bench, (sim_bench.clock.now(), 0.05))
    sim_raw_supply.write("OUTP ON,(@1)")
    assert abs(float(sim_raw_supply.query("MEAS:CURR? (@1)"))) < noise_bound(0.0)  # the window was all off
    sim_bench.clock.sleep(MEAS_WINDOW_S / 4)
    quarter = float(sim_raw_supply.query("MEAS:CURR? (@1)"))
    assert abs(quarter - 0.0125) < noise_bound(0.0125) + 1e-6
    sim_bench.clock.sleep(0.05)
    assert abs(sim_bench.supply.measure_current_a() - 0.05) < noise_bound(0.05)


# ---- status and completion -----------------------------------------------------------------------------
def test_operation_condition_shows_off_and_cv(sim_raw_supply):
    sim_raw_supply.write("OUTP OFF,(@1)")
    assert condition(sim_raw_supply) == 4
    sim_raw_supply.write("OUTP ON,(@1)")
    assert condition(sim_raw_supply) == 1


def test_meas_active_is_set_during_a_capture_and_cleared_exactly_at_completion(sim_raw_supply, sim_bench):
    points = 1000
    started_s = raw_capture(sim_raw_supply, sim_bench, points)
    assert condition(sim_raw_supply) == 1 | 32
    sim_bench.clock.sleep(points * TINT_BASE_S / 2)
    assert condition(sim_raw_supply) == 1 | 32
    wait_for_completion(sim_raw_supply, sim_bench)
    assert condition(sim_raw_supply) == 1
    # the completion is an instrument event: the clock stopped at it, not at the wait's deadline
    assert sim_bench.clock.now() == pytest.approx(started_s + points * TINT_BASE_S, abs=1e-6)


def test_a_bus_triggered_capture_waits_for_the_trigger_and_fetching_early_is_an_error(sim_raw_supply, sim_bench):
    for command in ("SENS:SWE:POIN 100,(@1)", "SENS:SWE:TINT 5.12e-6,(@1)", "TRIG:ACQ:SOUR BUS,(@1)", "INIT:ACQ (@1)"):
        sim_raw_supply.write(command)
    sim_bench.clock.sleep(1.0)
    assert condition(sim_raw_supply) & 32  # armed, waiting for its trigger
    sim_raw_supply.write("FETC:ARR:CURR? (@1)")  # no data before completion: an error, and no reply
    assert next_error(sim_raw_supply).startswith("-230,")
    sim_raw_supply.write("*TRG")
    triggered_s = sim_bench.clock.now()
    sim_raw_supply.write("FETC:ARR:CURR? (@1)")
    assert next_error(sim_raw_supply).startswith("-230,")
    wait_for_completion(sim_raw_supply, sim_bench)
    assert sim_bench.clock.now() == pytest.approx(triggered_s + 100 * TINT_BASE_S, abs=1e-6)
    sim_raw_supply.write("FORM ASC")
    assert len(sim_raw_supply.query("FETC:ARR:CURR? (@1)").split(",")) == 100


# ---- data formats ------------------------------------------------------------------------------------
@pytest.fixture
def completed_capture(sim_raw_supply, sim_bench):
    """A finished 200-point capture of a 5 mA load."""
    program_load(sim_bench, (sim_bench.clock.now(), 0.005))
    raw_capture(sim_raw_supply, sim_bench, 200)
    wait_for_completion(sim_raw_supply, sim_bench)
    return 200


def read_block(raw, command: str) -> tuple[bytes, bytes]:
    """Send a query answered by a definite-length block; return (header, payload) checked byte by byte."""
    raw.write(command)
    head = raw.read_bytes(2)
    assert head[:1] == b"#" and head[1:2].isdigit() and head[1:2] != b"0"
    size_text = raw.read_bytes(int(head[1:2]))
    assert size_text.isdigit()
    payload = raw.read_bytes(int(size_text))
    assert raw.read_bytes(1) == b"\n"  # the message terminator follows the block
    return head + size_text, payload


def test_ascii_and_real_formats_carry_the_same_samples(sim_raw_supply, completed_capture):
    sim_raw_supply.write("FORM ASC")
    assert sim_raw_supply.query("FORM?") == "ASC"
    text = sim_raw_supply.query("FETC:ARR:CURR? (@1)")
    assert all(v[0] in "+-" and "E" in v for v in text.split(","))
    ascii_values = np.array([float(v) for v in text.split(",")])
    sim_raw_supply.write("FORM REAL")
    sim_raw_supply.write("FORM:BORD NORM")
    assert sim_raw_supply.query("FORM?") == "REAL"
    binary = sim_raw_supply.query_binary_values(
        "FETC:ARR:CURR? (@1)", datatype="f", is_big_endian=True, container=np.array
    )
    assert len(ascii_values) == len(binary) == completed_capture
    np.testing.assert_allclose(binary, ascii_values, rtol=1e-6)
    assert np.all(np.abs(binary - 0.005) < noise_bound(0.005))


def test_byte_orders_norm_and_swap_both_parse_to_the_same_samples(sim_raw_supply, completed_capture):
    sim_raw_supply.write("FORM REAL")
    sim_raw_supply.write("FORM:BORD NORM")
    assert sim_raw_supply.query("FORM:BORD?") == "NORM"
    _, big = read_block(sim_raw_supply, "FETC:ARR:CURR? (@1)")
    sim_raw_supply.write("FORM:BORD SWAP")
    assert sim_raw_supply.query("FORM:BORD?") == "SWAP"
    _, little = read_block(sim_raw_supply, "FETC:ARR:CURR? (@1)")
    np.testing.assert_array_equal(np.frombuffer(big, ">f4"), np.frombuffer(little, "<f4"))
    swapped = sim_raw_supply.query_binary_values(
        "FETC:ARR:CURR? (@1)", datatype="f", is_big_endian=False, container=np.array
    )
    np.testing.assert_array_equal(swapped, np.frombuffer(big, ">f4"))
    assert np.all(np.abs(swapped - 0.005) < noise_bound(0.005))
    sim_raw_supply.write("FORM:BORD NORM")


@pytest.mark.parametrize(("points", "header"), [(1, b"#14"), (3, b"#212"), (25_000, b"#6100000")])
def test_real_data_is_an_ieee488_definite_length_block(sim_raw_supply, sim_bench, points, header):
    program_load(sim_bench, (sim_bench.clock.now(), 0.005))
    raw_capture(sim_raw_supply, sim_bench, points)
    wait_for_completion(sim_raw_supply, sim_bench, timeout_s=1.0)
    sim_raw_supply.write("FORM REAL")
    sim_raw_supply.write("FORM:BORD NORM")
    head, payload = read_block(sim_raw_supply, "FETC:ARR:CURR? (@1)")
    assert head == header
    assert len(payload) == 4 * points
    assert np.all(np.abs(np.frombuffer(payload, ">f4") - 0.005) < noise_bound(0.005))


def test_a_completed_acquisition_fetches_the_same_data_every_time(sim_raw_supply, completed_capture):
    sim_raw_supply.write("FORM REAL")
    sim_raw_supply.write("FORM:BORD NORM")
    first = read_block(sim_raw_supply, "FETC:ARR:CURR? (@1)")
    assert read_block(sim_raw_supply, "FETC:ARR:CURR? (@1)") == first
    mean = float(sim_raw_supply.query("FETC:CURR? (@1)"))
    assert mean == pytest.approx(float(np.mean(np.frombuffer(first[1], ">f4"))), rel=1e-6)


# ---- the driver's array capture ------------------------------------------------------------------
def test_capture_samples_are_the_mean_current_over_each_interval(sim_bench):
    supply, clock = sim_bench.supply, sim_bench.clock
    supply.set_output(True)
    now = clock.now()
    t0, t1 = now + 195.5 * TINT_BASE_S, now + 585.5 * TINT_BASE_S  # each edge halfway through a sample
    program_load(sim_bench, (t0, 0.05), (t1, 3e-6))
    points = 1000
    capture = supply.capture(points, TINT_BASE_S)

    assert capture.start_s == now and capture.interval_s == TINT_BASE_S
    assert len(capture.currents_a) == points and capture.currents_a.dtype == np.float32
    steps = [(0.0, 0.0), (t0 - now, 0.05), (t1 - now, 3e-6)]
    expected = interval_means(0.0, TINT_BASE_S, points, steps)
    assert np.all(np.abs(capture.currents_a - expected) <= noise_bound(expected))

    # the time axis: each edge falls in the sample the program says, which holds the weighted mean
    for edge_s, before_a, after_a in ((t0, 0.0, 0.05), (t1, 0.05, 3e-6)):
        k = int(np.searchsorted(capture.times_s, edge_s, side="right")) - 1
        assert k == math.floor((edge_s - now) / TINT_BASE_S)
        assert capture.times_s[k] <= edge_s < capture.times_s[k + 1]
        # relative times: absolute POSIX seconds near 1.8e9 resolve only 0.24 us, 5 % of a sample
        weight = ((k + 1) * TINT_BASE_S - (edge_s - now)) / TINT_BASE_S
        assert 0.1 < weight < 0.9
        straddling = before_a * (1 - weight) + after_a * weight
        assert abs(capture.currents_a[k] - straddling) <= noise_bound(straddling)
        assert abs(capture.currents_a[k - 1] - before_a) <= noise_bound(before_a)
        assert abs(capture.currents_a[k + 1] - after_a) <= noise_bound(after_a)

    exact_charge_c = 0.05 * (t1 - t0) + 3e-6 * (points * TINT_BASE_S - (t1 - now))
    assert abs(capture.charge_c - exact_charge_c) <= charge_bound(expected, TINT_BASE_S)
    assert clock.now() == pytest.approx(now + points * TINT_BASE_S, abs=1e-6)


def test_capture_with_pretrigger_points_starts_before_the_trigger(sim_bench):
    supply, clock = sim_bench.supply, sim_bench.clock
    supply.set_output(True)
    now = clock.now()
    t0, t1 = now + 3.0e-3, now + 4.0e-3
    program_load(sim_bench, (now, 0.0), (t0, 0.02), (t1, 1e-3))
    clock.sleep(3.5e-3)  # the 0.02 A pulse is half over when the capture triggers
    triggered_s = clock.now()
    points, pretrigger = 500, 400
    capture = supply.capture(points, TINT_BASE_S, pretrigger_points=pretrigger)

    assert capture.start_s == pytest.approx(triggered_s - pretrigger * TINT_BASE_S, abs=1e-9)
    steps = [(now - capture.start_s, 0.0), (t0 - capture.start_s, 0.02), (t1 - capture.start_s, 1e-3)]
    expected = interval_means(0.0, TINT_BASE_S, points, steps)
    assert np.all(np.abs(capture.currents_a - expected) <= noise_bound(expected))
    assert capture.times_s[0] < t0 < t1 < capture.times_s[-1]
    exact_charge_c = 0.02 * (t1 - t0) + 1e-3 * (points * TINT_BASE_S - (t1 - capture.start_s))
    assert abs(capture.charge_c - exact_charge_c) <= charge_bound(expected, TINT_BASE_S)
    # only the post-trigger part of the capture took virtual time
    assert clock.now() == pytest.approx(triggered_s + (points - pretrigger) * TINT_BASE_S, abs=1e-6)


@pytest.mark.parametrize(
    ("asked_s", "multiple"),
    [(5.12e-6, 1), (7.6e-6, 1), (7.7e-6, 2), (12e-6, 2), (20.48e-6, 4), (1e-3, 195), (1.0, 195312)],
)
def test_capture_interval_rounds_to_a_multiple_of_5_12_us(sim_bench, asked_s, multiple):
    start_s = sim_bench.clock.now()
    capture = sim_bench.supply.capture(4, asked_s)
    assert capture.interval_s == pytest.approx(multiple * TINT_BASE_S, rel=1e-12)
    assert capture.times_s[-1] - capture.start_s == pytest.approx(3 * multiple * TINT_BASE_S, abs=1e-6)
    assert sim_bench.clock.now() - start_s == pytest.approx(4 * multiple * TINT_BASE_S, abs=1e-6)


def test_sweep_interval_query_reports_the_rounded_interval(sim_raw_supply):
    sim_raw_supply.write("SENS:SWE:TINT 12e-6,(@1)")
    assert float(sim_raw_supply.query("SENS:SWE:TINT? (@1)")) == pytest.approx(10.24e-6, rel=1e-6)
    sim_raw_supply.write("SENS:SWE:TINT 1e-6,(@1)")
    assert error_code(sim_raw_supply) == -222


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"points": 0, "interval_s": TINT_BASE_S}, "points"),
        ({"points": MAX_POINTS + 1, "interval_s": TINT_BASE_S}, "points"),
        ({"points": 10, "interval_s": 1e-6}, "sample interval"),
        ({"points": 10, "interval_s": 61.0}, "sample interval"),
        ({"points": 10, "interval_s": TINT_BASE_S, "pretrigger_points": 11}, "pretrigger"),
        ({"points": 10, "interval_s": TINT_BASE_S, "pretrigger_points": -1}, "pretrigger"),
    ],
    ids=[
        "0-points",
        "too-many-points",
        "interval-too-short",
        "interval-too-long",
        "pretrigger>points",
        "negative-pretrigger",
    ],
)
def test_capture_refuses_bad_settings_before_sending_anything(sim_bench, kwargs, what):
    counting = CountingTransport(sim_bench.supply.transport)
    driver = N6705CPowerAnalyser(counting, sim_bench.clock)
    with pytest.raises(ValueError, match=what):
        driver.capture(**kwargs)
    assert counting.sent == []


def test_source_settings_out_of_range_are_refused_before_sending_anything(sim_bench):
    counting = CountingTransport(sim_bench.supply.transport)
    driver = N6705CPowerAnalyser(counting, sim_bench.clock)
    with pytest.raises(ValueError, match="voltage"):
        driver.set_voltage(25.0)
    with pytest.raises(ValueError, match="current limit"):
        driver.set_current_limit(0.0)
    with pytest.raises(ValueError, match="logging period"):
        driver.start_data_log(1e-6, 10.0)
    assert counting.sent == []


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("SENS:SWE:POIN 99999999,(@1)", "-222"),
        ("FORM:DATA HEX", "-224"),
        ("SENS:SWE:FROB 3,(@1)", "-113"),
        ("VOLT 3.6,(@7)", "-222"),
        ("VOLT abc,(@1)", "-104"),
    ],
)
def test_an_instrument_side_refusal_raises_instrument_error_naming_the_command(
    sim_bench, sim_raw_supply, command, code
):
    with pytest.raises(InstrumentError, match=rf"supply: '{re.escape(command)}' was refused: {code},"):
        sim_bench.supply.configure(command)
    assert next_error(sim_raw_supply) == '+0,"No error"'  # the driver emptied the queue


# ---- the data logger ----------------------------------------------------------------------------------
def test_data_log_of_an_hour_streams_mean_min_max_per_second_in_chunks(sim_bench):
    supply, clock = sim_bench.supply, sim_bench.clock
    supply.set_output(True)
    start = clock.now()
    base_a, spike_a = 3e-6, 0.05
    spikes = [(1234.25, 1234.75), (1999.75, 2000.25), (3599.5, 3600.5)]  # inside, across a chunk edge, past the end
    steps = [(start, base_a)]
    for begin, end in spikes:
        steps += [(start + begin, spike_a), (start + end, base_a)]
    program_load(sim_bench, *steps)

    chunks_iter = supply.data_log(1.0, 3600.0, 1000)
    first = next(chunks_iter)
    assert clock.now() == pytest.approx(start + 1000.0)  # the first chunk came before the log ended
    chunks = [first, *chunks_iter]
    assert [len(c.mean_a) for c in chunks] == [1000, 1000, 1000, 600]
    assert all(len(c.min_a) == len(c.max_a) == len(c.mean_a) <= 1000 for c in chunks)
    assert [c.start_s - start for c in chunks] == [0.0, 1000.0, 2000.0, 3000.0]
    assert all(c.period_s == 1.0 for c in chunks)

    mean = np.concatenate([c.mean_a for c in chunks])
    low = np.concatenate([c.min_a for c in chunks])
    high = np.concatenate([c.max_a for c in chunks])
    overlap = np.zeros(3600)
    periods = np.arange(3600.0)
    for begin, end in spikes:
        overlap += np.clip(np.minimum(periods + 1, end) - np.maximum(periods, begin), 0.0, None)
    expected_mean = base_a + (spike_a - base_a) * overlap
    expected_max = np.where(overlap > 0, spike_a, base_a)
    expected_min = np.where(overlap >= 1.0, spike_a, base_a)
    assert np.all(np.abs(mean - expected_mean) <= noise_bound(expected_mean))
    assert np.all(np.abs(high - expected_max) <= noise_bound(expected_max))
    assert np.all(np.abs(low - expected_min) <= noise_bound(expected_min))
    assert np.all((low <= mean) & (mean <= high))
    assert list(np.flatnonzero(overlap)) == [1234, 1999, 2000, 3599]
    assert mean[1234] == pytest.approx(0.5 * spike_a + 0.5 * base_a, rel=0.01)
    assert mean[1999] == pytest.approx(0.25 * spike_a + 0.75 * base_a, rel=0.01)
    assert clock.now() == pytest.approx(start + 3600.0)


def test_data_log_fetch_before_its_data_exists_is_an_error_not_data(sim_raw_supply, sim_bench):
    for command in (
        "SENS:DLOG:PER 1",
        "SENS:DLOG:TIME 10",
        "TRIG:DLOG:SOUR BUS",
        "FORM ASC",
        'INIT:DLOG "internal:\\early.dlog",(@1)',
    ):
        sim_raw_supply.write(command)
    assert condition(sim_raw_supply) & 32  # armed, waiting for *TRG
    sim_raw_supply.write("FETC:DLOG:CURR? 0,1,(@1)")
    assert next_error(sim_raw_supply).startswith("-230,")
    sim_raw_supply.write("*TRG")
    sim_bench.clock.sleep(0.5)
    assert sim_raw_supply.query("FETC:DLOG:POIN? (@1)") == "0"
    sim_raw_supply.write("FETC:DLOG:CURR? 0,1,(@1)")  # period 0 is not over yet
    assert next_error(sim_raw_supply).startswith("-222,")
    sim_bench.clock.sleep(0.5)
    assert sim_raw_supply.query("FETC:DLOG:POIN? (@1)") == "1"
    assert len(sim_raw_supply.query("FETC:DLOG:CURR? 0,1,(@1)").split(",")) == 1
    sim_raw_supply.write("ABOR:DLOG")
    assert not condition(sim_raw_supply) & 32
