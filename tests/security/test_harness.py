"""The harness itself: a crash, a hang and an escaped generic error are each reported, not hidden."""

from __future__ import annotations

import pytest
from _harness import run_case


def test_ok_case_reports_result() -> None:
    res = run_case("RESULT['x'] = 1 + 1")
    assert res.outcome == "ok"
    assert res.result == {"x": 2}


def test_generic_error_is_not_an_edgefuse_error() -> None:
    res = run_case("raise KeyError('k')")
    assert res.outcome == "raised"
    assert not res.report["edgefuse"]
    assert res.report["type"] == "KeyError"


def test_crash_is_reported_as_crashed() -> None:
    res = run_case("import os; os.abort()")
    assert res.outcome == "crashed"
    assert res.returncode < 0


def test_memory_limit_applies() -> None:
    res = run_case("b = bytearray(6 << 30)")
    assert res.outcome == "raised"
    assert res.report["type"] == "MemoryError"


def test_hang_fails_the_test() -> None:
    with pytest.raises(pytest.fail.Exception, match="hung"):
        run_case("import time; time.sleep(30)", timeout=2)
