"""The Python API for embedding the engine in a checkout: load a program once, apply events,
quote carts, read members."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import msgspec

from engine.core.apply import event_time, new_member
from engine.core.earning import RowChoices
from engine.model.errors import EventRejected
from engine.model.events import OrderPlaced, decode_cart
from engine.format.loader import load_program
from engine.core.orders import plan_order, quote_answer as quote_of
from engine.format.messages import refusal
from engine.model.answers import MemberView, Quote, as_builtins
from engine.format.program import Program
from engine.run.report import Views, as_of as state_as_of, member_view, state_at
from engine.run.runner import RunResult, Runner
from engine.store import open_store
from engine.store.base import Store
from engine.model.timeutil import parse_instant


class Engine:
    """One program over one ledger store.

    >>> engine = Engine("programs/andest.yaml")            # :memory: store
    >>> engine.apply({"id": "e1", "type": "member.registered", "at": "2025-01-05", "member": "m1"})
    """

    def __init__(self, program: Program | str | Path, store: Store | str = ":memory:"):
        self.program = program if isinstance(program, Program) else load_program(program)
        self.store = open_store(store, self.program.id, self.program.tz) if isinstance(store, str) else store
        self.runner = Runner(self.program, self.store)
        self.views = Views(self.program)   # members as of a quote's moment, kept between quotes
        self.runner.on_applied = lambda member: self.views.forget(member)

    def apply(self, event: dict | bytes | str) -> RunResult:
        """Apply one event (or a JSON text of one). The result lists it as applied, skipped or rejected."""
        if not isinstance(event, (dict, bytes, bytearray, str)):
            # a list of events is the usual slip: said, rather than msgspec's "a bytes-like object"
            raise TypeError(f"Engine.apply takes one event (a dict or its JSON text), not a {type(event).__name__}; "
                            "Engine.apply_many takes several")
        result = RunResult()
        raw = msgspec.json.encode(event) if isinstance(event, dict) else event
        self.runner.apply_one(raw, result)
        self.runner.commit()
        return result

    def apply_many(self, events) -> RunResult:
        return self.runner.run(msgspec.json.encode(e) if isinstance(e, dict) else e for e in events)

    def quote(self, cart: dict | bytes | str | OrderPlaced, at: Optional[str | datetime] = None) -> dict:
        """Price a cart (an order.placed object) for checkout; changes nothing. The quote as dicts:
        ``quote_answer`` encoded, as ``quote --json`` and POST /quote answer it."""
        return as_builtins(self.quote_answer(cart, at))

    def quote_answer(self, cart: dict | bytes | str | OrderPlaced, at: Optional[str | datetime] = None) -> Quote:
        """The quote of a cart (engine/model/answers.py ``Quote``). Raises BadEvent for a cart that
        is no order.placed object."""
        if not isinstance(cart, OrderPlaced):
            cart = decode_cart(msgspec.json.encode(cart) if isinstance(cart, dict) else cart)
        return quote_answer(self.program, self.runner.state_of(cart.member), cart, at, self.views, self.runner.choices)

    def close(self, at: str | datetime, booked_at: Optional[datetime] = None, jobs: int = 1,
              cluster: Optional[str] = None) -> dict:
        """Close the ledger through ``at`` (a bare date: the end of that day): every member's
        happenings due by then booked with no event (engine/run/close.py). Idempotent. Returns
        the close answer (docs/CONTRACT.md). ``jobs`` above 1 (worker processes) or ``cluster``
        (a Dask scheduler's address) shards the members; the ledger must then be a SQLite file or
        PostgreSQL, which the workers open themselves (raises run.close.CloseError otherwise)."""
        from engine.run.close import close, close_sharded, close_time

        when = at if isinstance(at, datetime) else close_time(at, self.program)
        self.runner.commit()
        try:
            if jobs > 1 or cluster:
                spec = getattr(self.store, "url", None) or getattr(self.store, "path", None) or ":memory:"
                result = close_sharded(self.program, self.store, str(spec), when, jobs=jobs, address=cluster,
                                       booked_at=booked_at)
            else:
                result = close(self.program, self.store, when, booked_at)
        finally:
            self.runner.cache.clear()   # the close wrote members' states behind the runner's back
            self.views = Views(self.program)
        return result.answer(self.program)

    def liability(self, start: str, end: str) -> dict:
        """The liability report for the months ``start`` to ``end`` ("YYYY-MM" or dates) as a dict
        (engine/run/liability.py, docs/CONTRACT.md)."""
        from engine.run.liability import liability_report, month_range

        self.runner.commit()
        return liability_report(self.program, self.store, *month_range(start, end))

    def member(self, member: str, at: Optional[str | datetime] = None) -> Optional[dict]:
        """The member object as of ``at`` (default: now); None when the member had no event by then.
        A time before the member's last event rebuilds it from its events up to then (raises
        report.PastViewUnavailable when the ledger cannot). ``member_answer`` as dicts."""
        view = self.member_answer(member, at)
        return None if view is None else as_builtins(view)

    def member_answer(self, member: str, at: Optional[str | datetime] = None) -> Optional[MemberView]:
        """The member as of ``at`` (engine/model/answers.py ``MemberView``), or None (see ``member``)."""
        state = self.runner.state_of(member)
        if state is None:
            return None
        when = _when(self.program, at) if at else datetime.now(timezone.utc)
        state, _ = state_at(self.program, self.store, state, when)
        if state is None:
            return None
        return member_view(self.program, state, when)


def _when(program: Program, at: str | datetime) -> datetime:
    return at if isinstance(at, datetime) else parse_instant(at, program.tz)


def quote(program: Program, state, cart: OrderPlaced, at: Optional[str | datetime] = None,
          views: Optional[Views] = None, choices: Optional[RowChoices] = None) -> dict:
    """The pure quote: (program, state, cart) → quote, as dicts (``quote_answer`` encoded)."""
    return as_builtins(quote_answer(program, state, cart, at, views, choices))


def quote_answer(program: Program, state, cart: OrderPlaced, at: Optional[str | datetime] = None,
                 views: Optional[Views] = None, choices: Optional[RowChoices] = None) -> Quote:
    """The pure quote: (program, state, cart) → Quote. ``at`` defaults to the cart's time.
    ``views`` and ``choices`` (the shell's) keep the member's view and the rate-row choices
    between quotes; the result is the same."""
    try:
        when = _when(program, at) if at else event_time(program, cart)
    except EventRejected as exc:
        return Quote(errors=[msgspec.structs.replace(exc.error(), field="at", rule=None)])
    except ValueError as exc:
        return Quote(errors=[refusal("quote.bad_time", "at", detail=str(exc))])
    base = state if state is not None else new_member(cart.member)
    try:
        if views is not None and state is not None:
            view = views.as_of(base, when)
        else:
            view, _, _ = state_as_of(program, base, when)
        out = quote_of(plan_order(program, view, cart, when, choices))
    except EventRejected as exc:   # a field the rules cannot price (a date out of range, ...)
        return Quote(errors=[exc.error()])
    if state is None and not cart.guest:
        out.errors.append(refusal("quote.unknown_member", "member", member=cart.member))
    return out
