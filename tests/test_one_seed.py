"""One seed (issue 14): every random choice of a run, the twin's, the platform's and the suites', derives from the
seed the run records, so `--seed N` with N the bench profile's seed reproduces the default run byte for byte
(C19 draws its configuration batch from the seed). Each child pytest hashes strings with its own random
PYTHONHASHSEED, so set iteration order cannot matter either."""

from __future__ import annotations

from pathlib import Path

from rig.bench import run_seed
from rig.matrix import REFERENCE, run_checks
from rig.profiles.bench import BenchProfile
from rig.profiles.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "profiles" / "benches" / "sim.yaml"
CHECKS = ("C1", "C19")


def test_the_default_seed_is_the_bench_profiles_and_an_asked_one_wins() -> None:
    profile = load_model(BENCH, BenchProfile)
    assert run_seed(profile, None) == profile.twin.seed
    assert run_seed(profile, 7) == 7


def test_seed_equal_to_the_profiles_reproduces_the_default_run_byte_for_byte(tmp_path: Path) -> None:
    default, explicit = tmp_path / "default.csv", tmp_path / "explicit.csv"
    seed = load_model(BENCH, BenchProfile).twin.seed
    first = run_checks(REFERENCE, CHECKS, extra=["--measurements", str(default)])
    second = run_checks(REFERENCE, CHECKS, seed=seed, extra=["--measurements", str(explicit)])
    assert {o.check for o in first.outcomes} >= set(CHECKS), "a check did not run"
    assert first.outcomes == second.outcomes
    assert default.read_bytes() == explicit.read_bytes()
