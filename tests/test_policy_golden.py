"""Every built-in policy, aware and agnostic, decides exactly as recorded in
``tests/data/policy_decisions.json.gz`` (written by ``tests/policy_golden.py`` on main before the
policy API moved to a read-only view): same decisions at the same times, same finish times, same
counters. A refactor of the policies or of how the scheduler calls them must keep this green."""

from __future__ import annotations

import pytest

from policy_golden import POLICIES, SCENARIOS, load, outcome

GOLDEN = load()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_policies_decide_as_recorded(scenario: str) -> None:
    want = GOLDEN[scenario]
    assert sorted(want) == sorted(POLICIES)  # the fixture covers every built-in policy
    for pol in POLICIES:
        got = outcome(scenario, pol)
        w = want[pol]
        first = next((i for i, (a, b) in enumerate(zip(got["decisions"], w["decisions"],
                                                        strict=False)) if a != b), None)
        assert first is None, f"{pol}: decision {first} is {got['decisions'][first]}, " \
                              f"recorded {w['decisions'][first]}"
        assert len(got["decisions"]) == len(w["decisions"]), pol
        assert got["finish"] == w["finish"], pol
        assert got["stats"] == w["stats"], pol
