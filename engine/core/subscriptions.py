"""Subscriptions (定期便): started, paused, resumed, cancelled, per subscription id, with the
member's history of changes (stage ladders count pause months from it)."""
from __future__ import annotations

from engine.format.messages import rejected
from engine.core.lots import Change
from engine.core.expiry import on_subscription_cancel
from engine.model.state import SubChange, member_status

_ALLOWED = {
    "started": ("none", "cancelled"),
    "paused": ("active",),
    "resumed": ("paused",),
    "cancelled": ("active", "paused"),
}
_TO = {"started": "active", "paused": "paused", "resumed": "active", "cancelled": "cancelled"}



def change_subscription(change: Change, what: str, sub_id: str) -> str:
    """Apply started/paused/resumed/cancelled to one subscription; returns the member's status before."""
    state = change.state
    current = state.subscriptions.get(sub_id, "none")
    if current not in _ALLOWED[what]:
        raise rejected("subscription.state", "subscription", sub=sub_id, current=current, what=what)
    before = member_status(state.subscriptions)
    change.journal.set(state.subscriptions, sub_id, _TO[what])
    if what == "started":
        state.expiry_cap = None   # a restart ends the cancellation's cut for units received from now
    change.journal.append(state.sub_history, SubChange(at=change.at, subscription=sub_id, status=_TO[what],
                                                       member_status=member_status(state.subscriptions)))
    if what == "cancelled":
        on_subscription_cancel(change)
    return before
