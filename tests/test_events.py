"""Event list and coalescing (docs/engine.md#events); expected values derived by hand from
upstream's loop."""

from __future__ import annotations

from reprise.sim.events import EventList


def test_from_arrivals_groups_by_time() -> None:
    ev = EventList.from_arrivals([(0, 10), (2, 10), (1, 70)])
    assert ev.times() == [10, 70]
    assert ev.first.arrivals == [0, 2]


def test_coalesce_merges_within_one_slot() -> None:
    ev = EventList.from_arrivals([(0, 30), (1, 100)])
    ev.add_completion(5, 50)
    assert ev.coalesce(0, 60) == 60
    assert ev.times() == [60, 100]
    assert ev.first.arrivals == [0]
    assert ev.first.completions == [5]
    assert ev.find(60) is ev.first
    assert ev.find(30) is None


def test_coalesce_without_completions_drops_them() -> None:
    ev = EventList.from_arrivals([(0, 30), (1, 45)], merge_completions=False)
    ev.add_completion(5, 50)
    assert ev.coalesce(0, 60) == 60
    assert ev.times() == [60]
    assert ev.first.arrivals == [0, 1]
    assert ev.first.completions == []


def test_lone_close_event_keeps_its_time() -> None:
    ev = EventList.from_arrivals([(0, 30)])
    assert ev.coalesce(0, 60) == 30


def test_event_exactly_one_slot_away_is_merged() -> None:
    ev = EventList.from_arrivals([(0, 30), (1, 60), (2, 61)])
    assert ev.coalesce(0, 60) == 60
    assert ev.times() == [60, 61]
    assert ev.first.arrivals == [0, 1]


def test_far_events_untouched_and_int_truncation() -> None:
    ev = EventList.from_arrivals([(0, 120), (1, 130)])
    assert ev.coalesce(0, 60) == 120
    ev = EventList()
    ev.add_completion(0, 60.5)  # int(60.5) <= 60: pulled back to now + slot
    ev.add_completion(1, 70)
    assert ev.coalesce(0, 60) == 60
    assert ev.times() == [60, 70]


def test_move_completion() -> None:
    ev = EventList()
    ev.add_completion(1, 100)
    ev.add_completion(1, 100)
    assert ev.first.completions == [1]
    ev.move_completion(1, 100, 150)
    assert ev.times() == [150]
    ev.move_completion(1, 150, 150)  # no-op
    ev.move_completion(2, 150, 150)  # no-op even though job 2 is filed nowhere
    assert ev.first.completions == [1]
    ev.add_mark(200)
    ev.move_completion(3, 200, 300)  # an empty mark at the old time is dropped
    assert ev.times() == [150, 300]
    ev.add_arrival(4, 150)
    ev.move_completion(1, 150, 160)  # the old event keeps its arrival
    assert ev.times() == [150, 160, 300]  # kept in time order
    assert ev.pop_first().arrivals == [4]
