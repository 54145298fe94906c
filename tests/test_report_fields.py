"""The campaign's census of report fields (S3 judges every report of the campaign against the device profile)."""

from __future__ import annotations

from rig.analysis.report_fields import ReportFieldCensus


def test_the_census_counts_reports_and_names_the_check_that_first_carried_a_field() -> None:
    census = ReportFieldCensus()
    census.add("C16", [{"type": "report", "battery_mv": 3600}, {"type": "report", "battery_mv": 3590}])
    census.add("C17", [{"type": "alarm_report", "owner_name": "Li Lei"}])
    census.add("C22", [{"type": "report", "owner_name": "Li Lei"}])
    census.add("C5", [])
    assert census.reports == 4 and census.checks == {"C16", "C17", "C22"}
    assert census.undeclared({"type", "battery_mv"}) == {"owner_name": "C17"}
    assert census.undeclared({"type", "battery_mv", "owner_name"}) == {}
