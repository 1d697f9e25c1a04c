"""The fast part of the fault suite (`python -m tests.fault_report --quick`) as a test: every
figure that must be 0 is 0 (issue 10's acceptance). The long part is `python -m tests.fault_report`."""

from __future__ import annotations

import logging

import fault_report


def test_the_fast_fault_suite_loses_nothing_leaks_nothing_and_always_explains(tmp_path):
    logging.getLogger("rarewatch").setLevel(logging.ERROR)  # roll-forward notes of ~100 killed runs
    tally = fault_report.run(quick=True, work=tmp_path)
    report = "\n".join([*tally.lines, *tally.problems, *tally.figures()])
    assert tally.faults >= 19 * 5, report
    assert tally.inputs >= 80, report
    assert tally.kills >= 5 and tally.kills_survived == tally.kills, report
    assert (tally.rows_lost, tally.rows_duplicated, tally.canaries_leaked, tally.bare_tracebacks,
            tally.policy_mismatches) == (0, 0, 0, 0, 0), report
