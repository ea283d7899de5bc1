"""Client event ids (`Event.event_id`): what a batch's ids make of it, so an id never silently drops an event.

An id names one event. The same event sent again (a retry after a lost answer) is kept once and counted as
accepted each time, so a retried batch answers as the first try did. The *same event* means the same shopper,
product, type, session, value and recommendation_id; the time is not compared, because an event sent without a
timestamp takes the server's clock at each try. An id that already names another event (stored, or earlier in the
same batch) is a conflict: that event is not stored, not counted, and named in the answer's `duplicates`; a second
copy of the same event inside one batch is kept once and named too (reason `repeated`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from deepshelf.storage.records import Event

REPEATED = "repeated"  # the same event (same id, same content) twice in one batch: kept and counted once
CONFLICT = "conflict"  # the id names another event (stored, or earlier in the batch): this one is not stored
_CHUNK = 500  # ids per `IN (...)`: well under every driver's parameter limit


class Duplicate(NamedTuple):
    index: int  # the event's position in its batch, 0-based
    event_id: str
    reason: str  # REPEATED | CONFLICT


class Ingested(NamedTuple):
    """What a batch made: `accepted` events kept (stored now, or already stored by an identical earlier try), and
    every other event of the batch, each in `duplicates` once."""

    accepted: int
    duplicates: list[Duplicate]


def content(e: Event) -> tuple:
    """What two events with one id must share to be the same event (not the time: see the module's doc)."""
    return (e.user_id, e.item_id, e.type, e.session_id, None if e.value is None else float(e.value),
            e.recommendation_id)


def first_of_each(events: Sequence[Event]) -> tuple[list[Event], list[Duplicate]]:
    """The batch without its later copies of an id (an event without an id is always kept), and those copies."""
    kept, seen, later = [], {}, []
    for n, e in enumerate(events):
        if e.event_id is None:
            kept.append(e)
            continue
        first = seen.get(e.event_id)
        if first is None:
            seen[e.event_id] = e
            kept.append(e)
        else:
            later.append(Duplicate(n, e.event_id, REPEATED if content(first) == content(e) else CONFLICT))
    return kept, later


def conflicts(cur, sql: Callable[[str], str], events: Sequence[Event]) -> set[str]:
    """Ids among `events` (one event per id) whose stored event is another one. Run in the inserting transaction,
    after the insert: every id of the batch is stored by then, by this batch or an earlier one."""
    mine = {e.event_id: content(e) for e in events if e.event_id is not None}
    ids = list(mine)
    taken: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        cur.execute(sql(f"SELECT event_id, user_id, item_id, type, session_id, value, recommendation_id FROM events "
                        f"WHERE event_id IN ({', '.join('?' * len(chunk))})"), chunk)
        for event_id, *stored in cur.fetchall():
            stored[4] = None if stored[4] is None else float(stored[4])
            if tuple(stored) != mine[event_id]:
                taken.add(event_id)
    return taken


def outcome(batch: Sequence[Event], later: list[Duplicate], taken: set[str]) -> Ingested:
    """The batch's `Ingested`, from its repeated copies (`first_of_each`) and its conflicting ids (`conflicts`):
    a copy of an event whose id is taken is a conflict too."""
    copies = {d.index for d in later}
    duplicates = sorted([*(Duplicate(d.index, d.event_id, CONFLICT if d.event_id in taken else d.reason)
                           for d in later),
                         *(Duplicate(n, e.event_id, CONFLICT) for n, e in enumerate(batch)
                           if e.event_id in taken and n not in copies)])
    return Ingested(len(batch) - len(duplicates), duplicates)
