"""The engine over HTTP (CONTRACT.md "Service"): a Litestar app for checkouts in any language.

    create_app("programs/andest.yaml", "ledger.db", token)     # an ASGI app; `loyalty serve` runs it

Routes: ``POST /events`` (one event or an array), ``POST /quote`` (a cart), ``GET /members/{id}``,
``GET /openapi.json`` and ``GET /healthz``. Every route but ``/healthz`` needs
``Authorization: Bearer TOKEN``; a request without the right token is answered 401 before its body
is read, so nothing is read or written for it.

How it is put together:

- **One Engine a worker process, owned by one thread.** The engine is not thread-safe and a SQLite
  connection belongs to the thread that opened it, so each app starts a single engine thread that
  opens the store and runs every engine call, read or write, one after another. That thread is the
  lock: requests are parsed and answered on the event loop, and their engine work queues there.
  The runner keeps member states in memory, which is only right while this process is the ledger's
  one writer: ``loyalty serve`` therefore runs one worker on SQLite. There (a store no other worker
  writes) a quote, which reads memory, is run by the loop itself when the engine thread has nothing
  queued; the engine lock makes sure the two never run the engine at once.
- **Group commit.** The events of the requests that arrive while the engine thread is busy are
  applied together in ONE transaction, one durable commit for all (``apply_group``); each event is
  still judged alone, and every request is answered only after that commit. An idle service
  commits a lone request at once. A rejected event changes nothing but its refusal record and is
  listed with its reason (then the answer is 422); the group's other events stand. If anything
  fails inside a group, the group is undone and its requests applied again one event a
  transaction, as below. A memory store (or PostgreSQL on Citus) keeps one event a transaction.
- **Alone, each event is its own transaction.** An array is applied event by event, each committed on its
  own; a rejected one changes nothing and is listed with its reason (then the answer is 422).
  If the engine raises something unexpected, that event's transaction is rolled back, the member
  cache dropped, and the event listed as rejected; if the store fails, the answer is 503 and the
  client retries the whole request (applied ids are then skipped as replays).
- **The OpenAPI document is derived from the engine's msgspec Structs** (``msgspec.json.schema_components``
  over the event, cart and answer Structs): the service validates with the same types it documents.
- **Never a 500 or a traceback in a response:** every error is a small JSON object; tracebacks go
  to the server log only. Access log: one JSON line a request on standard error (method, path,
  status, duration_ms, member), never a header, so never a token.
"""
from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import hmac
import json
import logging
import os
import random
import re
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Union

import msgspec
from msgspec import UNSET, UnsetType
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException

from engine.shell import metrics, shopify
from engine.shell.shopify import ShopifyError
from engine.shell.api import Engine
from engine.model.answers import Member, Quote, as_builtins
from engine.model.errors import Refusal
from engine.model.events import BadEvent, Event, OrderPlaced, decode_cart, printable
from engine.format.messages import refusal
from engine.format.loader import load_program
from engine.format.program import Program
from engine.run.report import PastViewUnavailable, member_view, state_at
from engine.run.runner import RunResult
from engine.store import open_store, parse_db
from engine.model.timeutil import parse_instant

MAX_BODY = 1 << 20           # bytes a request body may hold (1 MiB); more is 413
MAX_EVENTS = 1000            # events one POST /events may carry; more is 413
YEARS = (1970, 2199)         # times outside these years are refused (the clock would run for seconds)
HEALTH_TIMEOUT = 5.0         # seconds /healthz and /readyz wait for the engine thread
BODY_TIMEOUT = 10.0          # seconds a client has to send a whole request body; slower is 408
STORE_RETRIES = 1            # a failed store operation is retried this many times (after a rollback)
REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")   # an X-Request-Id taken as given; anything else is replaced

# The request being answered: every log line written meanwhile (on the loop or the engine thread) carries it.
request_context: contextvars.ContextVar[dict] = contextvars.ContextVar("loyalty_request", default={})

log = logging.getLogger("loyalty.service")

JSON = "application/json"


# --- answer types: documented in /openapi.json from these Structs -----------------------------------
# The quote and the member are the engine's own answers (engine/model/answers.py), a refusal is the
# engine's Refusal (engine/model/errors.py): the service answers the very objects the CLI and the
# Python API do.

class EventsAnswer(msgspec.Struct):
    applied: list[str]
    skipped: list[str]
    rejected: list[Refusal]     # each with its ``index`` in the array (null for a single event)


class Error(msgspec.Struct):
    error: str
    status: int


class Health(msgspec.Struct):
    status: str


# --- the engine thread -----------------------------------------------------------------------------

class StoreUnavailable(Exception):
    pass


class EngineHost:
    """One Engine and the one thread that runs it (see the module docstring)."""

    def __init__(self, program: Program, db_url: str):
        self.program = program
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loyalty-engine")
        self._lock = threading.Lock()       # guards the requests waiting for the next group, and _queued
        self._waiting: list[tuple[bytes, asyncio.Future, contextvars.Context]] = []
        self._draining = False              # a group is queued or running on the engine thread
        self._queued = 0                    # jobs submitted to the engine thread and not yet finished
        self._engine_lock = threading.Lock()   # held by whoever runs the engine: the engine thread, or the loop (inline)
        # A store only this process writes answers a quote from memory (the runner's cache): the
        # loop runs it itself when the engine thread is idle, sparing the two thread switches.
        self._inline = not parse_db(db_url).shared
        self.engine: Engine = self._pool.submit(self._open, program, db_url).result()

    def _open(self, program: Program, db_url: str) -> Engine:
        # Opened on the engine thread; a SQLite connection may be used by the loop too (inline),
        # never by both at once: _engine_lock.
        store = open_store(db_url, program.id, program.tz, any_thread=self._inline)
        store.checkpoint_aside()   # every request's commit stays an append to the log
        return Engine(program, store)

    def _submit(self, fn: Callable[..., Any], *args: Any):
        """Queue ``fn(*args)`` on the engine thread, under the engine lock."""
        with self._lock:
            self._queued += 1
        try:
            return self._pool.submit(self._locked, fn, *args)
        except BaseException:
            with self._lock:
                self._queued -= 1
            raise

    def _locked(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            with self._engine_lock:
                return fn(*args)
        finally:
            with self._lock:
                self._queued -= 1

    async def apply(self, body: bytes) -> tuple[int, dict, list[str]]:
        """POST /events through group commit: the body waits with the others that arrive while the
        engine thread is busy, and the next group takes them all (``apply_group``). An idle
        service answers a lone request at once (a group of one: no waiting added)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._waiting.append((body, future, contextvars.copy_context()))
            start, self._draining = not self._draining, True
        if start:
            self._submit_drain(loop)
        return await future

    def _submit_drain(self, loop) -> None:
        try:
            self._submit(self._drain, loop)
        except RuntimeError as exc:   # shutting down: the waiting requests are answered 503
            with self._lock:
                waiting, self._waiting, self._draining = self._waiting, [], False
            for _, future, _ in waiting:
                loop.call_soon_threadsafe(_settle, future, StoreUnavailable(f"the service is stopping ({exc})"))

    def _drain(self, loop) -> None:
        """On the engine thread: one group of the waiting requests, then (if more wait) the next
        group queued behind whatever else the engine thread has to do (quotes are not starved)."""
        with self._lock:
            group, self._waiting = self._waiting[:GROUP_REQUESTS], self._waiting[GROUP_REQUESTS:]
        try:
            outcomes = apply_group(self.engine, [(body, context) for body, _, context in group])
        except BaseException as exc:  # noqa: BLE001 - never leave a request waiting
            outcomes = [exc] * len(group)
        try:   # the whole group answered in one wake-up of the loop
            loop.call_soon_threadsafe(_settle_all, [(future, outcome) for (_, future, _), outcome in zip(group, outcomes)])
        except RuntimeError:   # the loop is closed: nobody waits any more
            pass
        with self._lock:
            more = bool(self._waiting)
            if not more:
                self._draining = False
        if more:
            self._submit_drain(loop)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        # the request's context goes with the work, so a log line of the engine thread names the request
        context = contextvars.copy_context()
        return await asyncio.wrap_future(self._submit(context.run, fn, self.engine, *args))

    async def run_soon(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``run``, or ``fn`` at once on the loop when the store is this process's alone and the
        engine thread has nothing queued (so nothing is overtaken): a quote reads memory."""
        if self._inline and not self._queued and self._engine_lock.acquire(blocking=False):
            try:
                return fn(self.engine, *args)
            finally:
                self._engine_lock.release()
        return await self.run(fn, *args)

    def close(self) -> None:
        try:
            self._submit(self.engine.store.close).result(timeout=30)
        finally:
            self._pool.shutdown(wait=True)


def _settle_all(settled: list[tuple[asyncio.Future, Any]]) -> None:
    for future, outcome in settled:
        _settle(future, outcome)


def _settle(future: asyncio.Future, outcome: Any) -> None:
    if future.done():       # the client went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class _Peek(msgspec.Struct):
    """The few fields the service reads before the engine does (for the log and the time guard)."""
    id: Any = None
    at: Any = None
    member: Any = None
    type: Any = None


_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_peek_decoder = msgspec.json.Decoder(_Peek)


def _peek(raw: bytes) -> _Peek:
    try:
        return _peek_decoder.decode(raw)
    except Exception:  # not an object, malformed, nested too deep: the engine will say why
        return _Peek()


def _text(value: Any) -> Optional[str]:
    return printable(value) if isinstance(value, str) else None


def _time_outside(text: Any, program: Program) -> bool:
    """True when ``text`` is a readable time outside YEARS (unreadable ones are left to the engine)."""
    if not isinstance(text, str):
        return False
    try:
        at = parse_instant(text, program.tz)
    except (ValueError, TypeError, OverflowError):
        return False
    return not (YEARS[0] <= at.year <= YEARS[1])


def _years_reason(what: str, text: str) -> str:
    return f"{what}: {_years_text(text)}"


def _years_text(text: str) -> str:
    return refusal("service.years", value=repr(text), first=YEARS[0], last=YEARS[1]).message


def _years_refusal(event_id: Optional[str], text: str) -> Refusal:
    """The refusal of an event or cart whose time is outside YEARS (field at)."""
    found = refusal("service.years", "at", value=repr(text), first=YEARS[0], last=YEARS[1])
    return msgspec.structs.replace(found, message=f"event {event_id or '?'}, field at: {found.message}")


def _is_store_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    return type(exc).__name__ in {"StoreError", "OperationalError", "InterfaceError"}


def _rollback(engine: Engine) -> None:
    """Undo whatever the failed event wrote in its open transaction, and forget cached states."""
    store = engine.store
    try:
        store.rollback()
    except Exception:  # pragma: no cover - nothing more can be done; the cache is dropped below
        log.exception("rollback failed")
    engine.runner.cache.clear()


def _forget_if_shared(engine: Engine, member: str) -> None:
    """On a shared store (PostgreSQL, other processes write it) read the member afresh."""
    if engine.store.shared:
        engine.runner.cache.pop(member, None)


def _fault(event_id: Optional[str], exc: BaseException) -> Refusal:
    """The refusal of an event the engine failed on (nothing of it stands)."""
    if isinstance(exc, RecursionError):
        return _malformed(event_id, "nested too deeply")
    detail = str(exc)[:200]
    found = refusal("service.fault", detail=type(exc).__name__ + (f": {detail}" if detail else ""))
    return msgspec.structs.replace(found, message=f"event {event_id or '?'}: {found.message}", event=event_id)


def _malformed(event_id: Optional[str], detail: str) -> Refusal:
    found = refusal("event.malformed_json", detail=detail)
    return msgspec.structs.replace(found, message=f"event {event_id or '?'}: {found.message}", event=event_id)


def apply_body(engine: Engine, body: bytes, group: Optional["_Group"] = None) -> tuple[int, Any, list[str]]:
    """POST /events on the engine thread: (status, EventsAnswer or an error, members named). Each
    event is committed on its own; with ``group`` (``apply_group``) nothing is committed here: the
    events go into the group's open transaction, a fault raises ``GroupFault`` instead of being
    answered, and the metrics wait for the group's commit."""
    result = RunResult()
    stripped = body.lstrip()
    if stripped[:1] == b"[":
        try:
            items = [bytes(item) for item in _raw_list.decode(body)]
        except (msgspec.DecodeError, RecursionError, ValueError) as exc:
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            return 422, EventsAnswer([], [], [_malformed(None, detail).with_index(None)]), []
        if len(items) > MAX_EVENTS:
            return 413, {"error": f"{len(items)} events in one request; at most {MAX_EVENTS}", "status": 413}, []
    else:
        items = [body]
    members: list[str] = []
    indexes: list[Optional[int]] = []
    single = len(items) == 1 and stripped[:1] != b"["
    for index, raw in enumerate(items):
        peek = _peek(raw)
        event_id, member = _text(peek.id), _text(peek.member)
        kind = peek.type if isinstance(peek.type, str) and len(peek.type) <= 40 and peek.type.isprintable() else "?"
        if member and member not in members:
            members.append(member)
        before = (len(result.rejected), len(result.applied), len(result.skipped))
        started = time.perf_counter()
        for attempt in range(STORE_RETRIES + 1):
            try:
                if _time_outside(peek.at, engine.program) and not (event_id and engine.store.is_applied(event_id)):
                    found = msgspec.structs.replace(_years_refusal(event_id, peek.at), event=event_id)
                    result.rejected.append(found)
                    engine.store.reject(event_id, member, found.message)
                else:
                    engine.runner.apply_one(raw, result)
                if group is None:
                    engine.store.commit()
            except Exception as exc:
                if group is not None:   # the whole group is undone, then applied request by request
                    raise GroupFault(event_id, exc) from exc
                _rollback(engine)
                # what the failed attempt listed is forgotten with its transaction
                del result.rejected[before[0]:], result.applied[before[1]:], result.skipped[before[2]:]
                if _is_store_error(exc):
                    metrics.STORE_ERRORS.labels("apply").inc()
                    if attempt < STORE_RETRIES:
                        metrics.STORE_RETRIES.labels("apply").inc()
                        log.warning("store failure while applying event %s, retried: %s", event_id, str(exc)[:200])
                        continue
                    log.exception("store failure while applying events")
                    raise StoreUnavailable(str(exc)) from None
                log.exception("engine failure on event %s", event_id)
                result.rejected.append(_fault(event_id, exc))
            break
        outcome = ("rejected" if len(result.rejected) > before[0] else
                   "skipped" if len(result.skipped) > before[2] else "applied")
        counted = (kind, outcome, time.perf_counter() - started, result.rejected[before[0]:])
        if group is None:
            _count_event(*counted)
        else:
            group.counts.append(counted)
        indexes.extend([None if single else index] * (len(result.rejected) - before[0]))
    rejected = [r.with_index(i) for r, i in zip(result.rejected, indexes)]
    return (422 if rejected else 200), EventsAnswer(result.applied, result.skipped, rejected), members


def _refused_cart(found: Refusal, cart_id: Union[str, None, UnsetType] = UNSET) -> dict:
    """The quote of a cart refused before it is priced (as Engine.quote answers: the Quote as
    dicts): ``errors`` only. ``cart_id``: named in front of the reason."""
    if cart_id is not UNSET:
        where = f"event {cart_id or '?'}" + (f", field {found.field}" if found.field else "")
        found = msgspec.structs.replace(found, message=f"{where}: {found.message}")
    return as_builtins(Quote(errors=[found]))


def _count_event(kind: str, outcome: str, seconds: float, refusals: list[Refusal]) -> None:
    metrics.APPLY_SECONDS.observe(seconds)
    metrics.EVENTS.labels(kind, outcome).inc()
    for found in refusals:
        metrics.count_refusal(found)


# --- group commit: the events of concurrent requests in one transaction -----------------------------

GROUP_REQUESTS = 64   # requests whose events share one transaction at most (more wait for the next)


class GroupFault(Exception):
    """An event of a group failed (the store, or the engine itself): the group is undone."""

    def __init__(self, event_id: Optional[str], cause: BaseException):
        super().__init__(f"event {event_id or '?'}: {type(cause).__name__}: {str(cause)[:200]}")


class _Group:
    """What a group's requests did that is told only once the group is committed (the metrics)."""

    def __init__(self) -> None:
        self.counts: list[tuple] = []


def _group_events(bodies: list[bytes]) -> list:
    """The decoded events of the requests' bodies (their members are locked for the group); what
    does not decode is left out here and refused where it is met."""
    from engine.model.events import decode_event

    events: list[Event] = []
    for body in bodies:
        items: list[bytes] | list[msgspec.Raw]
        if body.lstrip()[:1] == b"[":
            try:
                items = _raw_list.decode(body)
            except (msgspec.DecodeError, RecursionError, ValueError):
                continue
            if len(items) > MAX_EVENTS:
                continue
        else:
            items = [body]
        for raw in items:
            try:
                events.append(decode_event(bytes(raw)))
            except (BadEvent, RecursionError, ValueError, TypeError):
                pass
    return events


def apply_group(engine: Engine, requests: list[tuple[bytes, contextvars.Context]]) -> list:
    """POST /events of several requests at once, on the engine thread (group commit): their events in
    ONE transaction and one durable commit, each event still judged alone. A refused event writes
    its refusal and leaves the others applied; an id met twice in the group is applied once (the
    later ones skipped); every request gets its own answer, as if it had come alone, in arrival
    order. If anything fails in the group (the store, or the engine on one event) nothing of it is
    written: the requests are then applied one after the other, one event a transaction, as
    without group commit, so a fault stays with its request. Nothing is answered before the
    commit: an acknowledged event is durable. Returns, per request, (status, answer, members) or
    the exception its request ends with (StoreUnavailable: 503)."""
    metrics.GROUP_REQUESTS.observe(len(requests))
    if len(requests) > 1:
        together = _apply_together(engine, requests)
        if together is not None:
            return together
    out: list = []
    for body, context in requests:
        try:
            out.append(context.run(apply_body, engine, body))
        except Exception as exc:  # noqa: BLE001 - the request's own answer (503, or a 500 for a bug)
            out.append(exc)
    return out


def _apply_together(engine: Engine, requests: list[tuple[bytes, contextvars.Context]]) -> Optional[list]:
    runner = engine.runner
    try:
        if not runner.begin_group(_group_events([body for body, _ in requests])):
            return None          # memory, Citus: one event a transaction
    except Exception as exc:  # noqa: BLE001 - the store failed: the requests one by one say how
        runner.abandon_group()
        log.warning("group commit could not begin (%s): requests applied one by one", str(exc)[:200])
        return None
    group = _Group()
    try:
        answers = [context.run(apply_body, engine, body, group) for body, context in requests]
        runner.end_group()
    except Exception as exc:  # noqa: BLE001 - undone whole; applied again request by request
        runner.abandon_group()
        _rollback(engine)
        metrics.GROUPS_UNDONE.inc()
        if _is_store_error(exc.__cause__ or exc):
            metrics.STORE_ERRORS.labels("apply").inc()
        log.warning("a group of %d requests was undone (%s): applied again one by one", len(requests),
                    str(exc)[:200])
        return None
    for counted in group.counts:
        _count_event(*counted)
    return answers


def quote_body(engine: Engine, body: bytes) -> tuple[int, dict, Optional[str]]:
    """POST /quote on the engine thread: (status, quote, member). The quote is Engine.quote's (the
    engine's Quote as dicts), or one with ``errors`` only for a cart it could not price."""
    try:
        cart = decode_cart(body)
    except BadEvent as bad:
        found = bad.refusal()   # a quote's error names no event: the reason does
        return 422, _refused_cart(Refusal(message=found.message, code=found.code, args=found.args,
                                          field=found.field)), None
    except (RecursionError, ValueError, TypeError) as exc:  # msgspec's RecursionError escapes decode_cart
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        return 422, _refused_cart(refusal("event.malformed_json", detail=detail)), None
    if _time_outside(cart.at, engine.program):
        return 422, _refused_cart(_years_refusal(cart.id, cart.at)), cart.member
    started = time.perf_counter()
    out: Optional[dict] = None
    fault: Optional[Exception] = None
    for attempt in range(STORE_RETRIES + 1):
        _forget_if_shared(engine, cart.member)
        try:
            out = engine.quote(cart)
        except Exception as exc:
            if not _is_store_error(exc):
                fault = exc
                break
            metrics.STORE_ERRORS.labels("quote").inc()
            _rollback(engine)
            if attempt < STORE_RETRIES:
                metrics.STORE_RETRIES.labels("quote").inc()
                log.warning("store failure while quoting, retried: %s", str(exc)[:200])
                continue
            log.exception("store failure while quoting")
            raise StoreUnavailable(str(exc)) from None
        break
    metrics.QUOTE_SECONDS.observe(time.perf_counter() - started)
    if fault is not None or out is None:
        failure = fault or RuntimeError("no quote")
        log.error("engine failure quoting cart %s", cart.id, exc_info=(type(failure), failure, failure.__traceback__))
        detail = str(failure)[:200]
        return 422, _refused_cart(refusal("quote.fault", detail=type(failure).__name__ + (f": {detail}" if detail else "")),
                                  cart.id), cart.member
    return (200 if "totals" in out else 422), out, cart.member


def member_answer(engine: Engine, member: str, as_of: Optional[str]) -> tuple[int, dict]:
    """GET /members/{id} on the engine thread: (status, the Member as dicts, or an error)."""
    program = engine.program
    _forget_if_shared(engine, member)
    try:
        state = engine.runner.state_of(member)
    except Exception as exc:
        if _is_store_error(exc):
            raise StoreUnavailable(str(exc)) from None
        raise
    if state is None or not state.registered:
        return 404, {"error": f"unknown member {member}", "status": 404}
    if as_of is None:
        when = datetime.now(timezone.utc)
    else:
        try:
            when = parse_instant(as_of, program.tz)
        except (ValueError, TypeError, OverflowError) as exc:
            return 422, {"error": f"as_of: not an ISO 8601 time with offset, nor a date: {as_of!r} ({exc})", "status": 422}
        if not (YEARS[0] <= when.year <= YEARS[1]):
            return 422, {"error": _years_reason("as_of", as_of), "status": 422}
    try:
        state, _ = state_at(program, engine.store, state, when)   # before its last event: rebuilt
    except PastViewUnavailable as exc:
        return 422, {"error": f"as_of: {exc}", "status": 422}
    except Exception as exc:
        if _is_store_error(exc):
            raise StoreUnavailable(str(exc)) from None
        raise
    if state is None or not state.registered:
        return 404, {"error": f"unknown member {member} as of {when.astimezone(program.tz).isoformat()}: "
                              "not registered by then", "status": 404}
    try:
        view = member_view(program, state, when, member=member, as_of=when.astimezone(program.tz).isoformat())
    except Exception as exc:
        log.exception("engine failure reading member %s as of %s", member, as_of)
        return 422, {"error": f"member {member} as of {as_of}: the engine could not compute it "
                              f"({type(exc).__name__}: {str(exc)[:200]})", "status": 422}
    return 200, as_builtins(view)   # the Member as dicts, as Engine.member answers


def close_body(engine: Engine, body: bytes) -> tuple[int, dict]:
    """POST /close on the engine thread: {"as_of": T} closes the ledger through T (a bare date:
    the end of that day). (status, the close answer or an error)."""
    program = engine.program
    try:
        asked = msgspec.json.decode(body or b"{}")
    except msgspec.DecodeError as exc:
        return 400, {"error": f"not JSON: {exc}", "status": 400}
    as_of = asked.get("as_of") if isinstance(asked, dict) else None
    if not isinstance(as_of, str):
        return 422, {"error": "as_of: a time with offset or a date is needed (the moment to close through)",
                     "status": 422}
    from engine.run.close import close_time

    try:
        when = close_time(as_of, program)
    except (ValueError, TypeError, OverflowError) as exc:
        return 422, {"error": f"as_of: not an ISO 8601 time with offset, nor a date: {as_of!r} ({exc})", "status": 422}
    if not (YEARS[0] <= when.year <= YEARS[1]):
        return 422, {"error": _years_reason("as_of", as_of), "status": 422}
    try:
        return 200, engine.close(when)
    except Exception as exc:
        _rollback(engine)
        if _is_store_error(exc):
            raise StoreUnavailable(str(exc)) from None
        raise


def health(engine: Engine) -> bool:
    engine.store.is_applied("")  # one read of the ledger
    return True


def schema_state(store: Any) -> tuple[bool, str]:
    """Whether the ledger's schema is the one this engine writes: (current, what was found)."""
    return store.schema_state()


def readiness(engine: Engine) -> dict:
    """GET /readyz on the engine thread: the store answers, its schema is current, the program is loaded."""
    program = engine.program
    checks: dict[str, Any] = {}
    try:
        engine.store.is_applied("")
        checks["store"] = "ok"
        current, detail = schema_state(engine.store)
        checks["schema"] = "ok" if current else "outdated"
        checks["schema_detail"] = detail
    except Exception as exc:
        metrics.STORE_ERRORS.labels("ready").inc()
        log.warning("readiness: store does not answer: %s", str(exc)[:200])
        checks["store"] = "unavailable"
        checks["schema"] = "unknown"
    loaded = bool(program.versions)
    ready = checks["store"] == "ok" and checks["schema"] == "ok" and loaded
    return {"status": "ready" if ready else "unavailable", **checks,
            "program": program.id, "version": program.versions[-1].number if loaded else None,
            "digest": program.digest}


# --- Shopify webhooks (docs/SHOPIFY.md; the mapping is engine/shell/shopify.py) -------------------

SEEN_WEBHOOKS = 10_000   # webhook ids a worker remembers (the ledger's event ids are the durable guard)


def signed(secret: bytes, body: bytes, given: Optional[bytes]) -> bool:
    """X-Shopify-Hmac-SHA256: the base64 HMAC-SHA256 of the raw body, compared in constant time."""
    if not secret or not given:
        return False
    expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, given.strip())


def placed_event(store: Any, event_id: str) -> Optional[dict]:
    """The applied order.placed ``event_id`` as the ledger keeps it (its member and body), else None."""
    name = type(store).__name__
    if name == "SQLiteStore":
        row = store.db.execute("SELECT member, body FROM events WHERE id=? AND status='applied'", (event_id,)).fetchone()
    elif name == "PostgresStore":
        row = store.conn.execute("SELECT member, body FROM events WHERE program=%s AND id=%s AND status='applied'",
                                 (store.program, event_id)).fetchone()
    else:
        row = None
    if row is None or row[1] is None:
        return None
    body = json.loads(row[1])
    return {**body, "member": row[0]}


def shopify_apply(engine: Engine, topic: str, payload: Any) -> tuple[int, dict, list[str]]:
    """POST /webhooks/shopify on the engine thread: map the payload and apply its events."""
    placed = None
    if topic == "refunds/create" and isinstance(payload, dict) and payload.get("order_id") is not None:
        try:
            placed = placed_event(engine.store, shopify.placed_id(str(payload["order_id"])))
        except Exception as exc:
            if _is_store_error(exc):
                metrics.STORE_ERRORS.labels("shopify").inc()
                raise StoreUnavailable(str(exc)) from None
            raise
    try:
        events = shopify.events_of(topic, payload, placed)
    except ShopifyError as bad:
        return 422, {"topic": topic, "error": f"{topic}: {bad}", "field": bad.field, "events": []}, []
    if not events:
        return 200, {"topic": topic, "events": [], "applied": [], "skipped": [], "rejected": []}, []
    status, answer, members = apply_body(engine, _encode(events))
    answer = msgspec.structs.asdict(answer) if isinstance(answer, EventsAnswer) else answer
    return 200, {"topic": topic, "events": [e["id"] for e in events], **answer}, members


# --- the OpenAPI document --------------------------------------------------------------------------

# the request bodies and answers the routes name, generated together (shared Structs become components)
_DOCUMENTED = {"events": Union[Event, list[Event]], "cart": OrderPlaced, "answer": EventsAnswer, "quote": Quote,
               "member": Member, "error": Error, "health": Health}


def documented_schemas() -> tuple[dict[str, dict], dict[str, dict]]:
    """(the schema of each documented body and answer by its name in ``_DOCUMENTED``, the components
    they refer to), generated by msgspec from the Structs the service decodes with and answers with."""
    schemas, components = msgspec.json.schema_components(list(_DOCUMENTED.values()),
                                                         ref_template="#/components/schemas/{name}")
    return dict(zip(_DOCUMENTED, schemas)), components


def _body(schema: dict, description: str) -> dict:
    return {"required": True, "description": description, "content": {JSON: {"schema": schema}}}


def _answer(schema: dict, description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _failures(s: dict[str, dict]) -> dict[str, dict]:
    """The answers any route with a body may give besides its own: 401, 413, 503."""
    return {"401": _answer(s["error"], "no bearer token, or not the service's token; nothing read or written"),
            "413": _answer(s["error"], f"body over {MAX_BODY} bytes, or over {MAX_EVENTS} events"),
            "503": _answer(s["error"], "the ledger store failed; retry (applied ids are skipped on replay)")}


def _events_route(s: dict[str, dict]) -> dict:
    return {"post": {
        "operationId": "postEvents",
        "summary": "Apply one event or an array of events",
        "description": "Each event is applied on its own: a replayed id is skipped, a rejected event changes "
                       "nothing and is listed with its reason. 422 when any is rejected.",
        "requestBody": _body(s["events"], "one event, or an array of events (CONTRACT.md)"),
        "responses": {"200": _answer(s["answer"], "every event applied or skipped"),
                      "422": _answer(s["answer"], "at least one event rejected (the others are applied)"),
                      **_failures(s)}}}


def _quote_route(s: dict[str, dict]) -> dict:
    return {"post": {
        "operationId": "postQuote",
        "summary": "Price a cart for checkout without changing anything",
        "requestBody": _body(s["cart"], "a cart: an order.placed object"),
        "responses": {"200": _answer(s["quote"], "the quote; `errors` lists what the checkout must fix"),
                      "422": _answer(s["quote"], "not a cart: `errors` says why"),
                      **_failures(s)}}}


_CLOSE_ANSWER = {"type": "object", "properties": {
    "program": {"type": "string"}, "through": {"type": "string"}, "booked_at": {"type": "string"},
    "members": {"type": "integer"}, "members_booked": {"type": "integer"},
    "entries": {"type": "integer"}, "effects": {"type": "integer"}, "recorded": {"type": "boolean"},
    "previous_close": {"type": ["string", "null"]}}}


def _close_route(s: dict[str, dict]) -> dict:
    return {"post": {
        "operationId": "postClose",
        "summary": "Close the ledger through a moment: every member's happenings due by then booked",
        "description": "Expiries, birth-month bonuses, delayed restores and version switches due up to as_of are "
                       "booked for every member with no event needed, member by member; the close is "
                       "recorded when all are done. Idempotent: a second close to the same moment books nothing.",
        "requestBody": _body({"type": "object", "required": ["as_of"], "properties": {"as_of": {
            "type": "string", "description": "ISO 8601 with offset, or a bare date (the end of that day)"}}},
            "the moment to close through"),
        "responses": {"200": _answer(_CLOSE_ANSWER, "the close (docs/CONTRACT.md)"),
                      "400": _answer(s["error"], "the body is not JSON"),
                      "422": _answer(s["error"], "no usable as_of"),
                      **_failures(s)}}}


def _member_route(s: dict[str, dict]) -> dict:
    as_of = {"name": "as_of", "in": "query", "required": False,
             "description": "ISO 8601 with offset, or a bare date (00:00 in the program's time zone); default: now",
             "schema": {"type": "string"}}
    failures = _failures(s)
    return {"get": {
        "operationId": "getMember",
        "summary": "A member's points, tier and lots as of a time",
        "parameters": [{"name": "member_id", "in": "path", "required": True, "schema": {"type": "string"}}, as_of],
        "responses": {"200": _answer(s["member"], "the member"),
                      "401": failures["401"],
                      "404": _answer(s["error"], "no registered member with this id"),
                      "422": _answer(s["error"], "as_of is not a time"),
                      "503": failures["503"]}}}


def _own_routes(s: dict[str, dict]) -> dict:
    """The service's routes about itself: this document and the health check."""
    return {
        "/openapi.json": {"get": {
            "operationId": "getOpenAPI",
            "summary": "This document",
            "responses": {"200": _answer({"type": "object"}, "the OpenAPI document"),
                          "401": _failures(s)["401"]}}},
        "/healthz": {"get": {
            "operationId": "getHealth",
            "summary": "Liveness and store check (no token needed)",
            "security": [],
            "responses": {"200": _answer(s["health"], "the engine and its store answer"),
                          "503": _answer(s["health"], "the store does not answer")}}},
    }


def openapi_document(program: Program) -> dict:
    """The OpenAPI 3.1 document: every schema generated by msgspec from the Structs the service
    decodes with (the engine's events and cart) and answers with (the engine's answers,
    engine/model/answers.py, and the Structs above)."""
    s, components = documented_schemas()
    paths = {"/events": _events_route(s), "/quote": _quote_route(s), "/close": _close_route(s),
             "/members/{member_id}": _member_route(s), **_own_routes(s)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "loyalty-engine", "version": "1",
                 "description": f"The loyalty engine for program `{program.id}` over HTTP (CONTRACT.md, Service)."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


# --- the ASGI front: token, size, access log -------------------------------------------------------

_encode = msgspec.json.Encoder().encode


async def _send_json(send: Callable, status: int, payload: dict, headers: tuple = ()) -> None:
    body = _encode(payload)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _default_access_log(line: dict) -> None:
    # One write of the whole line: every request writes one, so the logging module's record (its
    # caller lookup, handler lock, formatter) is skipped; the stream is the same standard error.
    sys.stderr.write(_encode(line).decode() + "\n")


class _JSONFormatter(logging.Formatter):
    """Every line the process writes (the service's, uvicorn's error and access loggers) as one JSON
    object, with the request id when written while a request is answered; the traceback in one field
    (never in a response)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        context = request_context.get()
        if context:
            line.update(context)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _setup_logging() -> None:
    """Service errors go to standard error, one JSON object a line (as access lines do)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JSONFormatter())
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def uvicorn_log_config(level: str = "info") -> dict:
    """uvicorn's own loggers (``uvicorn``, ``uvicorn.error``, ``uvicorn.access``) as JSON lines too."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": "engine.shell.service._JSONFormatter"}},
        "handlers": {"json": handler},
        "loggers": {name: {"handlers": ["json"], "level": level.upper(), "propagate": False}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


class BodyTimeout(Exception):
    pass


def _header(scope, wanted: bytes) -> Optional[bytes]:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return value
    return None


# New request ids: 128 random bits as 32 hex digits, as uuid4().hex gives, from a generator seeded
# from os.urandom (again in a forked child) rather than os.urandom itself: its system call lets
# go of the GIL, and the loop then waits for the engine thread to hand it back. An id names a
# request in the logs; it guards nothing.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def _request_id(scope) -> str:
    given = _header(scope, b"x-request-id")
    if given:
        text = given.decode("latin-1")
        if REQUEST_ID.fullmatch(text):
            return text
    return f"{_ids.getrandbits(128):032x}"


class Front:
    """Wraps Litestar's ASGI handler: the request id, the token check (before anything is read), the
    size check, the body read under a time limit, the last-resort JSON error, one access-log line a
    request and the request counter."""

    OPEN = frozenset({"/healthz", "/readyz", "/metrics", "/webhooks/shopify"})

    def __init__(self, app, token: str, max_body: int, access_log: Callable[[dict], None], digest: str = "",
                 body_timeout: float = BODY_TIMEOUT, direct: Optional[dict[str, Callable]] = None):
        self.app = app
        # POST routes answered here from the body already read, past Litestar's routing, request
        # and response objects (every request of a checkout takes one): path -> async
        # (scope, body) -> (status, answer). The route is also Litestar's, for any other method
        # or spelling of the path.
        self.direct = direct or {}
        self.token = token.encode()
        self.max_body = max_body
        self.access_log = access_log
        self.digest = digest
        self.body_timeout = body_timeout

    def authorized(self, scope) -> bool:
        value = _header(scope, b"authorization")
        if value is None:
            return False
        scheme, _, given = value.partition(b" ")
        # constant-time comparison of the token (hmac.compare_digest)
        return hmac.compare_digest(given.strip(), self.token) and scheme.lower() == b"bearer"

    def too_large(self, scope) -> bool:
        value = _header(scope, b"content-length")
        return value is not None and value.isdigit() and int(value) > self.max_body

    async def read_body(self, receive) -> tuple[bytes, bool]:
        """The whole body within body_timeout seconds: (body, too large)."""
        chunks: list[bytes] = []
        size = 0
        try:
            # one deadline for the whole body (a timer, not a task a chunk)
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise BodyTimeout()
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:
                        return b"", True
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks), False
        except TimeoutError:
            raise BodyTimeout() from None

    async def answer(self, route: Callable, scope, body: bytes, send) -> None:
        """A direct route's answer, its errors answered as Litestar's handler answers them."""
        try:
            status, answer = await route(scope, body)
            headers: tuple = ()
        except Exception as exc:  # noqa: BLE001 - the error answer, as _error_handler gives it
            status, answer, given = _error_answer(exc, scope.get("method"), scope.get("path"))
            headers = tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in given.items())
        await _send_json(send, status, answer, headers)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        request_id = _request_id(scope)
        token = request_context.set({"request_id": request_id, "digest": self.digest})
        scope["loyalty.request_id"] = request_id

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            if scope["path"] not in self.OPEN and not self.authorized(scope):
                await _send_json(send_status, 401, {"error": "a bearer token is needed, the service's own", "status": 401},
                                 ((b"www-authenticate", b'Bearer realm="loyalty"'),))
            elif self.too_large(scope):
                await _send_json(send_status, 413, {"error": f"body over {self.max_body} bytes", "status": 413})
            elif scope.get("method") in ("POST", "PUT", "PATCH"):
                try:
                    body, large = await self.read_body(receive)
                except BodyTimeout:
                    await _send_json(send_status, 408, {"error": f"the request body did not arrive within "
                                                                 f"{self.body_timeout:g} s", "status": 408},
                                     ((b"connection", b"close"),))
                else:
                    if large:
                        await _send_json(send_status, 413, {"error": f"body over {self.max_body} bytes", "status": 413})
                    elif scope["method"] == "POST" and scope["path"] in self.direct:
                        await self.answer(self.direct[scope["path"]], scope, body, send_status)
                    else:
                        sent = False

                        async def replay():
                            nonlocal sent
                            if sent:
                                return await receive()   # a disconnect, after the body
                            sent = True
                            return {"type": "http.request", "body": body, "more_body": False}

                        await self.app(scope, replay, send_status)
            else:
                await self.app(scope, receive, send_status)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if status == 0:
                await _send_json(send_status, 500, {"error": "internal error", "status": 500})
        finally:
            members = scope.get("loyalty.members") or []
            line = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "request_id": request_id, "method": scope.get("method"), "path": scope.get("path"),
                    "status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "member": members[0] if len(members) == 1 else (members[:20] or None),
                    "digest": self.digest, "outcome": scope.get("loyalty.outcome") or _outcome_of(status)}
            if "loyalty.events" in scope:
                line["events"] = scope["loyalty.events"]
            if scope.get("loyalty.codes"):
                line["codes"] = scope["loyalty.codes"]
                line["reasons"] = scope.get("loyalty.reasons")
            route = scope["path"] if scope.get("path") in _ROUTES else ("/members/{id}" if str(scope.get("path", "")).startswith("/members/") else "other")
            try:
                metrics.REQUESTS.labels(route, str(status)).inc()
                self.access_log(line)
            except Exception:  # pragma: no cover - a log sink must not break a response
                pass
            request_context.reset(token)


_ROUTES = frozenset({"/events", "/quote", "/openapi.json", "/healthz", "/readyz", "/metrics", "/webhooks/shopify"})


def _outcome_of(status: int) -> str:
    return {200: "ok", 401: "unauthorized", 404: "not_found", 408: "timeout", 413: "too_large",
            422: "refused", 503: "unavailable"}.get(status, "error" if status >= 500 or status == 0 else "ok")


# --- the app ---------------------------------------------------------------------------------------

def _note_events(scope: Any, status: int, answer: Any, members: list[str]) -> None:
    """What the access line of an events request says: members, count, outcome, refusal codes.
    ``answer``: an EventsAnswer, the dict of a webhook's answer, or an error."""
    scope["loyalty.members"] = members
    if isinstance(answer, EventsAnswer):
        answer = msgspec.structs.asdict(answer)
    rejected = answer.get("rejected", ())
    scope["loyalty.events"] = len(answer.get("applied", ())) + len(answer.get("skipped", ())) + len(rejected)
    if status == 422 or status == 200:
        scope["loyalty.outcome"] = ("rejected" if rejected else "applied" if answer.get("applied") else "skipped")
    if rejected:
        scope["loyalty.codes"] = [metrics.refusal_code(r) for r in rejected][:20]
        scope["loyalty.reasons"] = [r.get("reason") for r in rejected][:5]


def _json_response(status: int, payload: Any) -> Response:
    return Response(content=_encode(payload), status_code=status, media_type=JSON)


def _error_answer(exc: Exception, method: Any, path: Any) -> tuple[int, dict, dict[str, str]]:
    """The answer to a request whose handler raised: (status, the error object, headers)."""
    if isinstance(exc, HTTPException):
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        headers = dict(exc.headers or {})
    elif isinstance(exc, StoreUnavailable):
        status, detail, headers = 503, "the ledger store failed; retry the request", {"retry-after": "1"}
    else:
        log.error("unhandled %s on %s %s", type(exc).__name__, method, path,
                  exc_info=(type(exc), exc, exc.__traceback__))
        status, detail, headers = 500, "internal error", {}
    if status >= 500 and status != 503:
        detail = "internal error"
    return status, {"error": detail, "status": status}, headers


def _error_handler(request: Request, exc: Exception) -> Response:
    status, error, headers = _error_answer(exc, request.method, request.url.path)
    return Response(content=_encode(error), status_code=status, media_type=JSON, headers=headers)


def create_app(program_path: str | Program, db_url: str, token: str, *, max_body: int = MAX_BODY,
               access_log: Optional[Callable[[dict], None]] = None, body_timeout: float = BODY_TIMEOUT,
               shopify_secret: Optional[str] = None) -> Litestar:
    """The service for one program over one ledger store. Loads the program and opens the store
    now (so a bad program or store fails here, not on the first request)."""
    if not token:
        raise ValueError("the service needs a token (LOYALTY_API_TOKEN)")
    program = program_path if isinstance(program_path, Program) else load_program(program_path)
    host = EngineHost(program, db_url)
    document: dict[str, bytes] = {}

    async def events_answer(scope: Any, body: bytes) -> tuple[int, Any]:
        status, answer, members = await host.apply(body)
        _note_events(scope, status, answer, members)
        return status, answer

    async def quote_answer(scope: Any, body: bytes) -> tuple[int, Any]:
        status, out, member = await host.run_soon(quote_body, body)
        if member:
            scope["loyalty.members"] = [member]
        scope["loyalty.outcome"] = "quoted" if status == 200 else "refused"
        if status == 422:
            errors = out.get("errors") or []
            scope["loyalty.codes"] = [metrics.refusal_code(e) for e in errors][:20]
            scope["loyalty.reasons"] = [e.get("reason") for e in errors][:5]
        return status, out

    @post("/events")
    async def post_events(request: Request) -> Response:
        return _json_response(*await events_answer(request.scope, await request.body()))

    @post("/quote")
    async def post_quote(request: Request) -> Response:
        return _json_response(*await quote_answer(request.scope, await request.body()))

    @get("/members/{member_id:path}")   # :path, so that an id with a "/" (sent as %2F) is found too
    async def get_member(request: Request) -> Response:
        member_id = request.path_params["member_id"].removeprefix("/")
        request.scope["loyalty.members"] = [member_id]
        status, out = await host.run(member_answer, member_id, request.query_params.get("as_of"))
        return _json_response(status, out)

    @post("/close")
    async def post_close(request: Request) -> Response:
        body = await request.body()
        status, out = await host.run(close_body, body)
        return _json_response(status, out)

    @get("/openapi.json")
    async def get_openapi() -> Response:
        if "json" not in document:
            document["json"] = _encode(openapi_document(program))
        return Response(content=document["json"], media_type=JSON)

    @get("/healthz")
    async def get_health() -> Response:
        try:
            await asyncio.wait_for(host.run(health), HEALTH_TIMEOUT)
        except Exception:
            log.exception("health check failed")
            return _json_response(503, {"status": "unavailable"})
        return _json_response(200, {"status": "ok"})

    secret = (shopify_secret if shopify_secret is not None else os.environ.get("LOYALTY_SHOPIFY_SECRET", "")).encode()
    seen: "OrderedDict[str, None]" = OrderedDict()

    @post("/webhooks/shopify")
    async def post_shopify(request: Request) -> Response:
        body = await request.body()
        topic = request.headers.get("x-shopify-topic", "")
        if not signed(secret, body, request.headers.get("x-shopify-hmac-sha256", "").encode("latin-1")):
            metrics.WEBHOOKS.labels(topic if topic in shopify.TOPICS else "other", "unsigned").inc()
            request.scope["loyalty.outcome"] = "unsigned"
            log.warning("shopify webhook refused: bad or missing X-Shopify-Hmac-SHA256" +
                        ("" if secret else " (LOYALTY_SHOPIFY_SECRET is not set)"))
            return _json_response(401, {"error": "X-Shopify-Hmac-SHA256 does not sign this body", "status": 401})
        label = topic if topic in shopify.TOPICS else "other"
        webhook_id = request.headers.get("x-shopify-webhook-id", "")[:200]
        if webhook_id and webhook_id in seen:
            metrics.WEBHOOKS.labels(label, "duplicate").inc()
            request.scope["loyalty.outcome"] = "duplicate"
            return _json_response(200, {"topic": topic, "webhook": webhook_id, "duplicate": True})
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            metrics.WEBHOOKS.labels(label, "malformed").inc()
            return _json_response(422, {"topic": topic, "error": f"malformed JSON: {str(exc)[:200]}", "events": []})
        status, answer, members = await host.run(shopify_apply, topic, payload)
        request.scope["loyalty.members"] = members
        if "applied" in answer:
            _note_events(request.scope, 200, answer, members)
        request.scope["loyalty.outcome"] = request.scope.get("loyalty.outcome") or ("refused" if status >= 400 else "ok")
        metrics.WEBHOOKS.labels(label, "refused" if status >= 400 else "applied" if answer.get("events") else "ignored").inc()
        if webhook_id:
            seen[webhook_id] = None
            while len(seen) > SEEN_WEBHOOKS:
                seen.popitem(last=False)
        return _json_response(status, {"webhook": webhook_id or None, **answer})

    @get("/readyz")
    async def get_ready() -> Response:
        try:
            answer = await asyncio.wait_for(host.run(readiness), HEALTH_TIMEOUT)
        except Exception:
            log.exception("readiness check failed")
            answer = {"status": "unavailable", "store": "unavailable", "program": program.id, "digest": program.digest}
        return _json_response(200 if answer["status"] == "ready" else 503, answer)

    @get("/metrics")
    async def get_metrics() -> Response:
        text, content_type = metrics.render()
        return Response(content=text, media_type=content_type)

    def shutdown() -> None:
        host.close()

    app = Litestar(
        route_handlers=[post_events, post_quote, post_close, get_member, get_openapi, get_health, get_ready,
                        get_metrics, post_shopify],
        exception_handlers={Exception: _error_handler},
        openapi_config=None,           # /openapi.json is ours, from the msgspec Structs
        request_max_body_size=max_body,
        on_shutdown=[shutdown],
        debug=False,
        logging_config=None,
    )
    _setup_logging()
    if access_log is None:
        access_log = _default_access_log
    app.asgi_handler = Front(app.asgi_handler, token, max_body, access_log, program.digest, body_timeout,
                             direct={"/events": events_answer, "/quote": quote_answer})
    metrics.set_program(program.id, program.versions[-1].number if program.versions else None, program.digest)
    app.state.engine_host = host
    return app


def app_from_env() -> Litestar:
    """The uvicorn factory `loyalty serve` starts in each worker (settings come through the environment)."""
    return create_app(os.environ["LOYALTY_SERVE_PROGRAM"], os.environ["LOYALTY_SERVE_DB"],
                      os.environ["LOYALTY_API_TOKEN"],
                      body_timeout=float(os.environ.get("LOYALTY_BODY_TIMEOUT") or BODY_TIMEOUT))
