"""The exit codes of `rig certify` and `rig report` (README's table), and how pytest's own codes map onto them:
pytest's are never passed through."""

from __future__ import annotations

import pytest

from rig.report.certificate import VERDICT_FAIL, VERDICT_INCOMPLETE, VERDICT_PASS

PASS, FAIL, USAGE, INCOMPLETE, CRASH = 0, 1, 2, 3, 4
OF_VERDICT = {VERDICT_PASS: PASS, VERDICT_FAIL: FAIL, VERDICT_INCOMPLETE: INCOMPLETE}
OF_PYTEST = {
    pytest.ExitCode.INTERRUPTED: INCOMPLETE,  # Ctrl-C or a session stopped early: whatever the cells say
    pytest.ExitCode.INTERNAL_ERROR: CRASH,
    pytest.ExitCode.USAGE_ERROR: USAGE,
    pytest.ExitCode.NO_TESTS_COLLECTED: USAGE,  # the selection (--checks, -k) matched no check
}


def verdict_code(verdict: str | None) -> int:
    """The code of a certificate's verdict; a run whose certificate could not be built is a usage error."""
    return USAGE if verdict is None else OF_VERDICT[verdict]


def certify_code(pytest_code: int, verdict: str | None) -> int:
    """`certify`'s code from pytest's and the certificate's verdict: pytest's interruptions, crashes and usage
    errors first; a session that ran (passed or failed tests) is what its certificate says; a certificate
    that could not be built after a run is a rig crash."""
    if pytest_code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return CRASH if verdict is None else OF_VERDICT[verdict]
    return OF_PYTEST.get(pytest_code, CRASH)
