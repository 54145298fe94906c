"""Link budget of the twin: repetitions, air time and delivery probability from RSRP, SINR and TX power.

Worse coverage means more repetitions, longer air time, more charge and more failures, uplink and
downlink each with its own budget (the uplink's from the module's transmit power), as in the field.
"""

from __future__ import annotations

import math

from rig.sim.radio import THERMAL_NOISE_DBM_PER_RE

ENB_RE_POWER_DBM = 32.2  # 20 W (43 dBm) over the 12 subcarriers of an NB-IoT carrier
ENB_NOISE_FIGURE_DB = 5.0
UL_REQUIRED_SNR_DB = 8.0  # effective SNR for about 10 % BLER per attempt, after combining
DL_REQUIRED_SINR_DB = 2.0
MAX_REPETITIONS = 128
UL_RATE_BPS = 16_000.0  # single-tone 15 kHz
DL_RATE_BPS = 25_000.0
DEFICIT_SLOPE_DB = 0.6
RESIDUAL_LOSS = {0: 0.002, 1: 0.004, 2: 0.01}
SIGNALLING_S = {0: 0.25, 1: 0.6, 2: 1.6}  # RACH + RRC setup at each coverage level


def uplink_snr_db(rsrp_dbm: float, tx_power_dbm: float) -> float:
    """SNR at the base station of a single-tone uplink: the path loss is what the downlink showed."""
    coupling_loss_db = ENB_RE_POWER_DBM - rsrp_dbm
    return tx_power_dbm - coupling_loss_db - (THERMAL_NOISE_DBM_PER_RE + ENB_NOISE_FIGURE_DB)


def repetitions(snr_db: float, required_db: float) -> tuple[int, float]:
    """Repetitions (a power of two, at most 128) and the SNR deficit left after the most of them."""
    needed = 10.0 ** ((required_db - snr_db) / 10.0)
    count = 1 if needed <= 1 else min(MAX_REPETITIONS, 2 ** math.ceil(math.log2(needed)))
    deficit_db = required_db - (snr_db + 10.0 * math.log10(count))
    return count, max(deficit_db, 0.0)


def success_probability(deficit_db: float, ecl: int) -> float:
    """One attempt gets through: near certain with margin, falling steeply with an SNR deficit."""
    return (1.0 - RESIDUAL_LOSS[ecl]) * math.exp(-max(deficit_db, 0.0) / DEFICIT_SLOPE_DB)


def uplink_air_time_s(size_bytes: int, reps: int) -> float:
    return (size_bytes * 8 + 64) / UL_RATE_BPS * reps


def downlink_air_time_s(size_bytes: int, reps: int) -> float:
    return (size_bytes * 8 + 64) / DL_RATE_BPS * reps
