"""Targets shared by the benchmark scripts: one convention for every script that has targets.

Each script declares its ``TARGETS`` (a name, ``<=`` or ``>=`` and a limit) and, after measuring, hands
the measured values to :func:`check`. That prints one line per target::

    PASS  overhead_us = 14.2  (target <= 30)
    MISS  onnx_export_s = 17.9  (target <= 15)

and returns the exit status: **1 when any target is missed, 0 when every target passes**. With
``--no-targets`` (see :func:`add_arguments`) the same lines are printed but the status is 0 (report
only). A value that is not a finite number is a MISS. Usage errors exit 2 (argparse); a crash exits 1
with its traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Target", "add_arguments", "check"]


@dataclass(frozen=True)
class Target:
    """One figure a benchmark must reach: ``value <op> limit``."""

    name: str
    op: Literal["<=", ">="]
    limit: float
    note: str = ""

    def met(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def at(self, limit: float) -> Target:
        """The same target with a limit computed in the run (e.g. from a measured share)."""
        return replace(self, limit=limit)


def add_arguments(parser) -> None:
    """Add ``--no-targets`` to a script's argument parser."""
    parser.add_argument(
        "--no-targets",
        action="store_true",
        help="report PASS/MISS for every target but exit 0 even when one is missed",
    )


def check(
    targets: list[Target], values: Mapping[str, float], *, enforce: bool = True
) -> tuple[int, list[dict]]:
    """Print PASS/MISS per target; return ``(exit status, JSON rows)``.

    Every target must have a value in ``values`` (a missing one is a bug in the script: KeyError).
    """
    rows = []
    for t in targets:
        value = float(values[t.name])
        ok = t.met(value)
        rows.append({"name": t.name, "value": value, "op": t.op, "limit": t.limit, "met": ok})
        note = f"; {t.note}" if t.note else ""
        print(f"{'PASS' if ok else 'MISS'}  {t.name} = {value:.4g}  (target {t.op} {t.limit:.4g}{note})")
    missed = [r["name"] for r in rows if not r["met"]]
    if missed:
        verdict = "exit 0: --no-targets" if not enforce else "exit 1"
        print(f"{len(missed)} of {len(rows)} targets missed ({verdict})")
    else:
        print(f"all {len(rows)} targets met")
    return (1 if missed and enforce else 0), rows
