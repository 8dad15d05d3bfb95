"""Cancellations and returns: void what the order no longer earns (X-5), give back what it used."""
from __future__ import annotations

from datetime import datetime

import msgspec

from engine.core.earning import compute_earn
from engine.format.messages import rejected
from engine.model.events import CARD_METHOD, OrderReturned, ReturnLine, brand_key
from engine.core.lots import Change, ids_in, of_order
from engine.core.orders import find_order, order_env
from engine.core.pricing import exact_nets, invoice_items, with_kept_amounts
from engine.model.state import Order, Timer
from engine.core.tiers import record_order
from engine.model.timeutil import local_date


def remove_earned(change: Change, order: Order, units: int, rule: str) -> None:
    """Take back ``units`` the order earned: its pending points first, then its valid ones; what the
    member already spent is taken from the rest of the balance, and what is still missing is owed
    (settled from the next points that become valid), so a balance never goes negative. Nothing
    to take back (``units`` ≤ 0: a threshold order whose cancellation already took back more
    through the carry than it earned itself) takes nothing and owes nothing."""
    if units <= 0:
        return
    left = units
    for state in ("pending", "valid"):
        moved = change.move(left, state, "void", "void", rule, where=of_order(order.id))
        left -= sum(l.amount for l in moved)
    if left > 0:
        moved = change.move(left, "valid", "void", "clawback", rule)
        left -= sum(l.amount for l in moved)
    change.state.debt += left


def restore_used(change: Change, order: Order, units: int, rule: str, cancelled: bool = False) -> None:
    """Give back ``units`` used on the order, now or after the program's delay (ANS-12): the delay
    after a return, or the one after a cancellation where the program gives its own."""
    if units <= 0:
        return
    returns = change.version.returns
    delay = returns.restore_used_after if returns else None
    if cancelled and returns is not None and returns.cancel_restore_after is not None:
        delay = returns.cancel_restore_after
    if delay and (delay.years or delay.months or delay.days):
        local = change.at.astimezone(change.program.tz)
        due = datetime.combine(delay.after(local.date()), local.timetz())
        change.journal.append(change.state.timers, Timer(at=due, kind="restore", source=change.source,
                                                         order=order.id, amount=units, rule=rule))
    else:
        do_restore(change, order.id, units, rule)


def do_restore(change: Change, order_id: str, units: int, rule: str) -> None:
    """Give back ``units`` used on the order (now, or when the delayed restore's timer fires). What
    the member still owes from clawbacks comes off them when the event or happening ends (core)."""
    order = change.state.orders[order_id]
    change.move(units, "used", "valid", "restore", rule, where=ids_in(order.used_lots))


def cancel(change: Change, order_id: str) -> None:
    order = find_order(change, order_id)
    if order.status in ("cancelled", "returned"):
        raise rejected("order.already", "order", order=order_id, status=order.status)
    if order.status == "delivered":
        raise rejected("order.delivered_use_return", "order", order=order_id)
    returns = change.version.returns
    rule = (returns.cancel_rule or returns.rule) if returns else (order.earn_rules[0] if order.earn_rules else "")
    # threshold earning: the order's amount leaves the carry, taking back the units it crossed
    removed = uncount(change, order, order.counted, rule) if order.counted else 0
    remove_earned(change, order, order.earned - removed, rule)
    # a cancelled order ships nothing: the units of its rewards come back too
    restore_used(change, order, order.points_used + order.exchange_units - order.points_restored, rule, cancelled=True)
    record_order(change.journal, change.state, order, msgspec.structs.replace(
        order, status="cancelled", earned=0, counted=0, points_restored=order.points_used + order.exchange_units),
        change.program.tz)


def uncount(change: Change, order: Order, amount: int, rule: str) -> int:
    """Threshold earning: take ``amount`` back out of the carry; every threshold the carry falls
    below takes back the units it gave (from this order's lots first). Returns units removed."""
    earning = change.version.earning
    state = change.state
    state.carry -= amount
    removed = 0
    if earning is None or earning.kind != "threshold":
        state.carry = max(state.carry, 0)
        return 0
    while state.carry < 0:
        state.carry += earning.per_yen
        removed += earning.units
    if removed:
        remove_earned(change, order, removed, rule)
    return removed


def return_lines(change: Change, event: OrderReturned) -> None:
    order = find_order(change, event.order)
    returns = change.version.returns
    if returns is None:
        raise rejected("returns.none", "type")
    if order.status in ("cancelled", "returned"):
        raise rejected("order.already", "order", order=order.id, status=order.status)
    since = order.delivered_at if returns.counts_from == "delivered" else order.shipped_at
    if since is None:
        raise rejected("returns.other", "order", returns.rule,
                       detail=f"order {order.id} has not been {returns.counts_from} yet; a return counts from then "
                              f"(cancel it instead)")
    if returns.window is not None:
        last_day = returns.window.after(local_date(since, change.program.tz))
        if local_date(change.at, change.program.tz) > last_day:
            raise rejected("returns.other", "at", returns.rule,
                           detail=f"the return window of {returns.window} from {returns.counts_from} "
                                  f"({local_date(since, change.program.tz)}) ended on {last_day}")
    back = list(order.returned_by_line()) or [0] * len(order.lines)
    for i, ret in enumerate(event.lines):
        pos = _line_of(change, order, ret, i)
        line = order.lines[pos]
        refused = returns.refuse_tags.intersection(line.tags)
        if refused:
            raise rejected("returns.other", f"lines[{i}].sku", returns.rule,
                           detail=f"{ret.sku} is a {'/'.join(sorted(refused))} item and cannot be returned")
        if back[pos] + ret.qty > line.qty:
            raise rejected("returns.other", f"lines[{i}].qty",
                           detail=f"returns {ret.qty} of {ret.sku} but only {line.qty - back[pos]} "
                                  f"are kept on order {order.id}")
        back[pos] += ret.qty
    returned = tuple(back)
    version = next(v for v in change.program.versions if v.number == order.version)
    counted = order.counted
    if order.counted:
        # threshold earning: the returned amount leaves the carry (and any threshold it crossed)
        earning = change.version.earning
        counted = invoice_items(order.lines, returned, earning is not None and earning.base == "items_incl_tax")
        new_earned = order.earned - uncount(change, order, order.counted - counted, returns.rule)
    else:
        # the kept lines earn what the same rules and rounding give them; the difference goes.
        # (a state stored before brands were folded holds the brand as sent: fold it the same way)
        brand = brand_key(order.card_brand) if order.payment_method == CARD_METHOD else None
        env = order_env(order.course, order.tier, order.payment_method, brand, order.guest,
                        order.placed_at, change.program.tz, order.subscription_month)
        kept = compute_earn(version.earning, order.lines, env, local_date(order.placed_at, change.program.tz),
                            returned, change.choices) if order.earned else None
        new_earned = kept.units if kept else 0
        remove_earned(change, order, order.earned - new_earned, returns.rule)
    all_back = all(back >= line.qty for back, line in zip(returned, order.lines))
    # (never below what earlier returns gave back: nothing is given twice)
    due = max(used_back(order, returned, all_back), order.points_restored)
    restore_used(change, order, due - order.points_restored, returns.rule)
    record_order(change.journal, change.state, order, with_kept_amounts(msgspec.structs.replace(
        order, returned_lines=returned, returned={}, earned=new_earned, counted=counted, points_restored=due,
        status="returned" if all_back else order.status)), change.program.tz)


def _line_of(change: Change, order: Order, ret: ReturnLine, i: int) -> int:
    """The position in the order's lines that return line ``i`` names: its ``line``, or the one
    line its sku stands on. A return that cannot tell lines apart is refused, never guessed."""
    if ret.line is not None:
        if ret.line >= len(order.lines):
            raise rejected("returns.other", f"lines[{i}].line",
                           detail=f"order {order.id} has {len(order.lines)} line(s): there is no line {ret.line} "
                                  f"(lines count from 0)")
        if order.lines[ret.line].sku != ret.sku:
            raise rejected("returns.other", f"lines[{i}].line",
                           detail=f"line {ret.line} of order {order.id} is {order.lines[ret.line].sku}, not {ret.sku}")
        return ret.line
    at = [pos for pos, line in enumerate(order.lines) if line.sku == ret.sku]
    if not at:
        catalog = change.version.catalog
        if catalog is not None and ret.sku in catalog.rewards and not catalog.returnable:
            raise rejected("returns.other", f"lines[{i}].sku", catalog.rule,
                           detail=f"{ret.sku} is a reward item: reward items cannot be returned or exchanged")
        raise rejected("returns.other", f"lines[{i}].sku", detail=f"sku {ret.sku} is not on order {order.id}")
    if len(at) > 1:
        raise rejected("returns.other", f"lines[{i}].line",
                       detail=f"{ret.sku} stands on lines {', '.join(map(str, at))} of order {order.id}: "
                              f"give the line's position in 'line'")
    return at[0]


def used_back(order: Order, returned: tuple[int, ...], all_back: bool) -> int:
    """Units used on the order that its returned lines give back (ANS-12): all of them once every
    line is back, else in proportion to the returned lines' share of the order's net amount,
    floored. Worked from the amounts (the weights the points were spread by), not from the rounded
    points shares, so one line of n units and n lines of one unit give back the same."""
    if all_back:
        return order.points_used
    total = sum(line.net_ex for line in order.lines)
    if not total or not order.points_used:
        return 0
    nets = exact_nets(order.lines)
    back = sum(nets[i] * units / line.qty for i, (units, line) in enumerate(zip(returned, order.lines)) if units)
    return int(order.points_used * back / total)
