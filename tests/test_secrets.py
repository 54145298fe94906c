"""Secrets from the environment reach the meter and the rig, and no output of a run ever shows them.

One short real campaign (C14 signs images with the vendor's key, C15 logs in over the near-end port, every
downlink is sealed with the platform's key) runs with a device profile that reads its maintenance password, image
signing key and platform key from environment variables; the twin reads the same profile, so both checks pass only
if both ends resolved the same values (a meter with another platform key would ignore every downlink, images too).
Then every file the run wrote (Allure results, the rendered report, certificate, junit, run.json, measurements,
outcomes, history) and the console output are searched for each secret: as text, in hex, and in base64 at any
alignment (the single-file report embeds the Allure results base64-encoded).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_METER = ROOT / "profiles" / "devices" / "reference-meter.yaml"
SECRETS = {
    "RIG_TEST_MAINTENANCE_PASSWORD": "Vq8-maint-pass-271828",
    "RIG_TEST_IMAGE_SIGNING_KEY": "Kz4-image-signing-key-314159",
    "RIG_TEST_PLATFORM_KEY": "Pw7-platform-downlink-key-161803",
}


def encodings(secret: str) -> dict[str, bytes]:
    """The ways a secret could show in a file: raw, hex, and base64 at each of the three byte alignments (the
    characters that depend only on the secret, so it is found inside a longer encoded blob too)."""
    raw = secret.encode()
    found = {"text": raw, "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode()}
    for shift in range(3):
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * shift + raw)
            found[f"{name}+{shift}"] = encoded[4 if shift else 0 : -4]
    return found


def test_encodings_find_a_secret_inside_a_larger_base64_blob() -> None:
    secret = SECRETS["RIG_TEST_MAINTENANCE_PASSWORD"]
    for prefix in (b"", b"a", b"ab", b"abc"):
        blob = base64.b64encode(prefix + b"login " + secret.encode() + b" ok\n")
        assert any(pattern in blob for pattern in encodings(secret).values())


def test_a_run_with_secrets_from_the_environment_shows_none_of_them(tmp_path: Path) -> None:
    device = tmp_path / "meter-with-env-secrets.yaml"
    device.write_text(
        f"extends: {REFERENCE_METER}\n"
        "maintenance: {password: {env: RIG_TEST_MAINTENANCE_PASSWORD}}\n"
        "upgrade: {signing_key: {env: RIG_TEST_IMAGE_SIGNING_KEY}}\n"
        "platform_auth: {key: {env: RIG_TEST_PLATFORM_KEY}}\n"
    )
    results = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "rig", "certify", "--device", str(device), "--results", str(results),
         "--", "--checks", "C14,C15"],
        cwd=ROOT, capture_output=True, timeout=300, env={**os.environ, **SECRETS},
    )
    console = run.stdout + run.stderr
    assert run.returncode == 3, console.decode(errors="replace")  # INCOMPLETE: the other checks did not run
    run_folder = (results / "latest").resolve()
    outcomes = [json.loads(line) for line in (run_folder / "outcomes.jsonl").read_text().splitlines()]
    assert {(item["check"], item["outcome"]) for item in outcomes} == {("C14", "passed"), ("C15", "passed")}

    written = {path: path.read_bytes() for path in results.rglob("*") if path.is_file()}
    expected = ["allure-results", "report", "junit.xml", "certificate.md", "run.json", "measurements.csv",
                "outcomes.jsonl", "history.jsonl"]
    for name in expected:
        assert any(name in path.parts for path in written), f"the run wrote no {name}"
    written[Path("console")] = console
    for variable, secret in SECRETS.items():
        for encoding, pattern in encodings(secret).items():
            leaks = [str(path) for path, content in written.items() if pattern in content]
            assert not leaks, f"{variable} ({encoding}) appears in {leaks}"
