"""The peer: the same &est quote rules as a GoRules zen-engine decision graph (bench/andest.jdm.json).

The graph: an expression node sums the 12-month window, a decision table (hit policy "first")
picks the tier and its rate, an expression node prices the lines (member price
floor(unit × 0.95)), a decision table in loop mode gives each line its rate (5% for
``points_5pct``, else the tier's), and a last expression node computes tax per rate, the grand
total, earn floor(Σ net × rate) and the redeem limit min(balance, 5,000, grand total). zen-engine
computes in decimals, so its figures match the engine's integers exactly.

The wrapper times what a Python checkout calling zen-engine does per cart: build the context
(the window's start is calendar arithmetic, done in Python as for the hand-written floor),
evaluate, read the result. It calls ``ZenEngine.evaluate(key, context)`` with a static loader:
on zen-engine 0.30 and later that path is ~50× faster per call than ``ZenDecision.evaluate``.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Optional

from .handwritten import HandMember, window_start

MODEL = Path(__file__).with_name("andest.jdm.json")


def missing() -> Optional[str]:
    """None when zen-engine is importable, else why not (the bench then skips the comparison)."""
    try:
        import zen  # noqa: F401
    except ImportError as exc:
        return f"zen-engine is not installed ({exc}); pip install -e '.[bench]' to compare with it"
    return None


class ZenAndest:
    def __init__(self, model: Path = MODEL):
        import zen

        self.engine = zen.ZenEngine({"loader": {"type": "static", "content": {"andest": json.loads(model.read_text())}}})

    def member(self, hand: HandMember) -> dict:
        """The member as a zen-engine user would keep it: JSON-ready values."""
        return {"balance": hand.balance, "orders": [{"placed": p, "amount": a} for p, a in hand.orders]}

    def quote(self, member: dict, cart: dict, now: datetime) -> dict:
        asked = (cart.get("redeem") or {}).get("points", 0)
        context = {"lines": cart["lines"], "shipping": cart.get("shipping", 0), "balance": member["balance"],
                   "orders": member["orders"], "since": window_start(now), "now": now.timestamp(),
                   "asked": asked}
        r = self.engine.evaluate("andest", context)["result"]
        return {"items_ex_tax": int(r["items"]), "tax_total": int(r["tax"]), "grand_total": int(r["grand"]),
                "to_pay": int(r["grand"] - r["applied"]), "tier": r["tier"], "earn": int(r["earn"]),
                "redeem_max": int(r["redeem_max"]), "applied": int(r["applied"])}
