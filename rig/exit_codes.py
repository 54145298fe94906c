"""The exit codes of `rig certify` and `rig report` (README's table), and how pytest's own codes map onto them:
pytest's are never passed through."""

from __future__ import annotations

from rig.report.certificate import VERDICT_FAIL, VERDICT_INCOMPLETE, VERDICT_PASS

PASS, FAIL, USAGE, INCOMPLETE, CRASH = 0, 1, 2, 3, 4
# pytest's ExitCode values, spelled out so the command line loads pytest only when it runs one
PYTEST_OK, PYTEST_TESTS_FAILED, PYTEST_INTERRUPTED, PYTEST_INTERNAL_ERROR, PYTEST_USAGE_ERROR = range(5)
PYTEST_NO_TESTS = 5
OF_VERDICT = {VERDICT_PASS: PASS, VERDICT_FAIL: FAIL, VERDICT_INCOMPLETE: INCOMPLETE}
OF_PYTEST = {
    PYTEST_INTERRUPTED: INCOMPLETE,  # Ctrl-C or a session stopped early: whatever the cells say
    PYTEST_INTERNAL_ERROR: CRASH,
    PYTEST_USAGE_ERROR: USAGE,
    PYTEST_NO_TESTS: USAGE,  # the selection (--checks, -k) matched no check
}
NO_REPORT = (PYTEST_USAGE_ERROR, PYTEST_NO_TESTS)  # nothing ran: no certificate is built


def verdict_code(verdict: str | None) -> int:
    """The code of a certificate's verdict; a run whose certificate could not be built is a usage error."""
    return USAGE if verdict is None else OF_VERDICT[verdict]


def certify_code(pytest_code: int, verdict: str | None, collection_failed: bool = False) -> int:
    """`certify`'s code from pytest's and the certificate's verdict: a suite that could not be collected is a
    rig crash; then pytest's interruptions, crashes and usage errors; a session that ran is what its
    certificate says, except that failed tests under a PASS certificate (an error no cell recorded) make it
    INCOMPLETE; a certificate that could not be built after a run is a rig crash."""
    if collection_failed:
        return CRASH
    if pytest_code in (PYTEST_OK, PYTEST_TESTS_FAILED):
        if verdict is None:
            return CRASH
        if pytest_code == PYTEST_TESTS_FAILED and verdict == VERDICT_PASS:
            return INCOMPLETE
        return OF_VERDICT[verdict]
    return OF_PYTEST.get(pytest_code, CRASH)
