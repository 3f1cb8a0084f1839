"""Offline compatibility suite: a set of prompts run against baseline and candidate.

The "prompt compatibility test harness" of the migration guides, scored by the same
judge as live shadow traffic, with paired statistics and a pass/fail gate for CI::

    cases = load_suite(Path("prompts.csv"))            # or cases_from_captures(...)
    results = asyncio.run(run_cases(cases, settings=settings, baseline="gpt-5.2",
                                    candidate="gpt-5.5", repeats=3, concurrency=8))
    report = build_report(cases, results, source="prompts.csv", baseline="gpt-5.2",
                          candidate="gpt-5.5", repeats=3, policy=GatePolicy(),
                          seed=0, confidence=0.95)
    report.gate.passed

Import from the modules (``suite.loader``, ``suite.runner``, ``suite.report``, …): this
package re-exports nothing, so loading one part does not load SciPy for the rest.
"""
