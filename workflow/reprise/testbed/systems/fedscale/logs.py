"""Per-round test accuracy/loss, training loss and round time from FedScale's aggregator log."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reprise.errors import TestbedError

# "(12-06) 05:49:26 INFO  [aggregator.py:581] Wall clock: 7019 s, round: 2, ..., Training loss: 4.1"
_STAMP = r"^\((?P<md>\d\d-\d\d)\) (?P<hms>\d\d:\d\d:\d\d)"
ROUND = re.compile(
    _STAMP + r".*Wall clock: \S+ s, round: (?P<round>\d+),.*Training loss: (?P<loss>\S+)"
)
TEST = re.compile(_STAMP + r".*FL Testing in round: (?P<round>\d+), .*results: (?P<res>\{.*\})\s*$")


@dataclass
class RoundRow:
    """One FedScale round: its training loss, test metrics (when tested) and wall-clock length."""

    round: int
    train_loss: float | None = None
    test_top1: float | None = None
    test_top5: float | None = None
    test_loss: float | None = None
    started_s: float | None = None
    round_s: float | None = None


def _stamp(md: str, hms: str, year: int) -> float:
    return datetime.strptime(f"{year}-{md} {hms}", "%Y-%m-%d %H:%M:%S").timestamp()


def parse_aggregator_log(path: Path, year: int | None = None) -> list[RoundRow]:
    """Rounds in order. FedScale logs 'round: N' when round N starts (N-1's training loss with it).

    Round N lasts from its start line to round N+1's; FedScale's stamps have whole seconds, so a
    round's length is accurate to about a second (sums over rounds are exact to a second).
    """
    if not path.is_file():
        raise TestbedError(f"{path}: FedScale's aggregator log is missing; see the run's logs")
    year = year or datetime.now().year
    rows: dict[int, RoundRow] = {}
    starts: dict[int, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        if m := ROUND.match(line):
            n = int(m["round"])
            starts[n] = _stamp(m["md"], m["hms"], year)
            if n > 1:
                rows.setdefault(n - 1, RoundRow(n - 1)).train_loss = float(m["loss"])
        elif m := TEST.match(line):
            n = int(m["round"])
            res = ast.literal_eval(m["res"])  # a Python dict literal of floats
            row = rows.setdefault(n, RoundRow(n))
            row.test_top1 = float(res["top_1"])
            row.test_top5 = float(res["top_5"])
            row.test_loss = float(res["loss"])
    if not starts:
        raise TestbedError(f"{path}: no round was logged; FedScale did not start training")
    first = min(starts.values())
    for n, t in starts.items():
        row = rows.setdefault(n, RoundRow(n))
        row.started_s = t - first
        if n + 1 in starts:
            row.round_s = starts[n + 1] - t
    # the last 'round: R' line is FedScale's shutdown (round R never trains): not a round
    last = max(starts)
    if last in rows and rows[last].test_top1 is None and rows[last].train_loss is None:
        del rows[last]
    return [rows[n] for n in sorted(rows)]
