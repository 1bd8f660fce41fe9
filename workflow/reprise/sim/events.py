"""The simulator's event list: arrivals, completions and re-plan marks keyed by time
(docs/engine.md#events)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter

from reprise.errors import SimulationError


@dataclass(slots=True, eq=False)
class Event:
    """Jobs arriving and jobs completing at `time`; both empty = a bare re-plan mark (EF)."""

    time: float
    arrivals: list[int] = field(default_factory=list)
    completions: list[int] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not self.arrivals and not self.completions


class EventList:
    """Events with unique times, looked up by time and kept in ascending time order.

    Upstream appends and sorts before it reads the head; every read of the order here (`first`,
    `coalesce`) comes after such a sort, so keeping the list sorted on every insertion gives the
    same events in the same order, while finding an event deep in a long list (a far completion
    moved on a trace of 100,000 arrivals) is a binary search instead of a scan.

    `merge_completions` selects the coalescing flavour: True for EF, ef, EDF, EDF+AC (arrivals and
    completions of merged events move into the first one); False for Gandiva and Tiresias (only
    arrivals move; the merged event's completions are dropped, as upstream).
    """

    def __init__(self, merge_completions: bool = True) -> None:
        self.merge_completions = merge_completions
        self._events: list[Event] = []
        self._by_time: dict[float, Event] = {}

    @classmethod
    def from_arrivals(
        cls, jobs: Iterable[tuple[int, int]], merge_completions: bool = True
    ) -> EventList:
        """One event per distinct submit time; `jobs`: (job idx, submit time), submission order."""
        events = cls(merge_completions)
        for job, t in jobs:
            events._get_or_create(t).arrivals.append(job)
        events.sort()
        return events

    # ---- access ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._events)

    def __bool__(self) -> bool:
        return bool(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    @property
    def first(self) -> Event:
        """The earliest event (the head of the list)."""
        if not self._events:
            raise SimulationError("the event list is empty")
        return self._events[0]

    def find(self, time: float) -> Event | None:
        """The event at exactly `time` (int and float times compare equal, as upstream)."""
        return self._by_time.get(time)

    def times(self) -> list[float]:
        return [e.time for e in self._events]

    # ---- edits -----------------------------------------------------------------------------

    def _get_or_create(self, time: float) -> Event:
        event = self._by_time.get(time)
        if event is None:
            event = Event(time)
            self._insert(event)
            self._by_time[time] = event
        return event

    def _insert(self, event: Event) -> None:
        events = self._events
        if not events or events[-1].time < event.time:
            events.append(event)
        else:
            events.insert(bisect_left(events, event.time, key=_time), event)

    def _position(self, event: Event) -> int:
        """Index of `event` (by identity) in the list."""
        events = self._events
        i = bisect_left(events, event.time, key=_time)
        if i < len(events) and events[i] is event:
            return i
        raise SimulationError(f"event at {event.time} is not in the list")

    def add_mark(self, time: float) -> Event:
        """Make sure an event exists at `time` (EF's empty re-plan event)."""
        return self._get_or_create(time)

    def add_arrival(self, job: int, time: float) -> None:
        self._get_or_create(time).arrivals.append(job)

    def add_completion(self, job: int, time: float) -> None:
        """File `job`'s completion at `time` (no duplicate inside one event)."""
        event = self._get_or_create(time)
        if job not in event.completions:
            event.completions.append(job)

    def move_completion(self, job: int, old_time: float, new_time: float) -> None:
        """Move `job`'s completion from `old_time` to `new_time`.

        Upstream semantics, kept literally: nothing happens when the times are equal (even if the
        job is filed nowhere); the event found at `old_time` is deleted once it holds neither
        arrivals nor completions, even if `job` was not in it (e.g. a bare re-plan mark).
        """
        if old_time == new_time:
            return
        old = self._by_time.get(old_time)
        if old is not None:
            if job in old.completions:
                old.completions.remove(job)
            if old.is_empty():
                self.remove(old)
        self.add_completion(job, new_time)

    def remove(self, event: Event) -> None:
        del self._events[self._position(event)]
        if self._by_time.get(event.time) is event:
            del self._by_time[event.time]

    def pop_first(self) -> Event:
        event = self.first
        self.remove(event)
        return event

    def set_time(self, event: Event, time: float) -> None:
        """Re-key an event; two events may not share a time."""
        if event.time == time:
            event.time = time
            return
        other = self._by_time.get(time)
        if other is not None and other is not event:
            raise SimulationError(f"two events would share time {time}")
        del self._events[self._position(event)]
        if self._by_time.get(event.time) is event:
            del self._by_time[event.time]
        event.time = time
        self._by_time[time] = event
        self._insert(event)

    def sort(self) -> None:
        """Upstream's sort before reading the head; nothing to do, the list is kept in order."""

    def coalesce(self, now: float, slot: int) -> float:
        """Fold every event within one slot of `now` into one at now + slot
        (docs/engine.md#events).

        Returns the time of the new head. The closeness test truncates (int) like upstream, so a
        head less than one second past now + slot is pulled back to now + slot. A lone event
        closer than a slot keeps its own time. Requires a non-empty list.
        """
        events = self._events
        head_time = events[0].time
        moved = False
        while int(head_time - now) <= slot and len(events) > 1:
            moved = True
            head, second = events[0], events[1]
            if second.time - now > slot:
                break
            head_time = second.time
            head.arrivals.extend(second.arrivals)
            if self.merge_completions:
                head.completions.extend(second.completions)
            del events[1]
            if self._by_time.get(second.time) is second:
                del self._by_time[second.time]
        if moved:
            # re-keyed once all folding is done: an event at exactly now + slot is folded first
            # (every event left behind the head lies more than one slot past now, so the head
            # stays first)
            self.set_time(events[0], now + slot)
        return events[0].time


_time = attrgetter("time")
