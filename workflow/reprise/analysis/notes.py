"""Measured explanations of reproduced values, declared under `notes` in config/paper/<figure>.yaml.

Each entry names its policies, optionally its groups, and when it applies (`outside_tolerance`, the
default; `late_but_counted`: some jobs end late yet count as met; or `always`); its text may quote
the row's counts, e.g. `{late_but_counted_met} of {total}`. `explained: false` marks a note that
does not give the cause of a gap to the published value (measurements only, or another topic).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reprise.errors import ConfigError

WHEN = ("outside_tolerance", "late_but_counted", "always")
FIELDS = (
    "accepted",
    "total",
    "late_but_counted_met",
    "ratio_published_rule",
    "ratio_completion",
    "ratio_std",
    "published",
    "delta",
)
"""Table columns a note's text may quote in braces."""


@dataclass(frozen=True)
class Note:
    policies: frozenset[str]
    groups: frozenset[str] | None
    """None: every group of the figure."""
    when: str
    text: str
    explained: bool = True

    def applies(self, row: Mapping[str, str]) -> bool:
        if row.get("status") != "ok" or row["policy"] not in self.policies:
            return False
        if self.groups is not None and row["group"] not in self.groups:
            return False
        if self.when == "late_but_counted":
            return int(row.get("late_but_counted_met") or 0) > 0
        return self.when == "always" or row.get("within_tolerance") == "false"


def _names(value: Any, where: str, key: str, known: Sequence[str]) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}.{key}: give a non-empty list of names, e.g. [{known[0]}]")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}.{key}: unknown {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )
    return frozenset(value)


def paper_notes(paper: Mapping[str, Any]) -> list[Note]:
    """The paper file's notes, checked: known policies and groups, a known `when`, known fields."""
    source = f"config/paper/{paper.get('figure', '?')}.yaml"
    raw = paper.get("notes", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: notes must be a list of {{policies, text}} entries")
    notes = []
    for i, entry in enumerate(raw):
        where = f"{source}: notes[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("text"), str):
            raise ConfigError(f"{where}: give at least `policies: [...]` and `text: ...`")
        extra = sorted(set(entry) - {"policies", "groups", "when", "text", "explained"})
        if extra:
            raise ConfigError(
                f"{where}: unknown key(s) {extra}; use policies, groups, when, text, explained"
            )
        explained = entry.get("explained", True)
        if not isinstance(explained, bool):
            raise ConfigError(f"{where}.explained: {explained!r}; use true or false")
        policies = _names(entry.get("policies"), where, "policies", list(paper["order"]))
        groups = None
        if "groups" in entry:
            groups = _names(entry["groups"], where, "groups", list(paper.get("groups", [])))
        when = entry.get("when", "outside_tolerance")
        if when not in WHEN:
            raise ConfigError(f"{where}.when: {when!r}; use one of {', '.join(WHEN)}")
        for _, field, _, _ in string.Formatter().parse(entry["text"]):
            if field is not None and field not in FIELDS:
                raise ConfigError(
                    f"{where}.text: unknown field {{{field}}}; a note may quote {', '.join(FIELDS)}"
                )
        notes.append(Note(policies, groups, when, entry["text"].strip(), explained))
    return notes


def note_for(notes: Sequence[Note], row: Mapping[str, str]) -> str:
    """Every applicable note's text, with the row's counts filled in, one after the other."""
    values = {field: row.get(field, "") for field in FIELDS}
    return " ".join(n.text.format_map(values) for n in notes if n.applies(row))


def explained(notes: Sequence[Note], row: Mapping[str, str]) -> str:
    """For a row outside its tolerance: "true" when a note gives the cause, else "false"."""
    if row.get("status") != "ok" or row.get("within_tolerance") != "false":
        return ""
    return str(any(n.explained and n.applies(row) for n in notes)).lower()
