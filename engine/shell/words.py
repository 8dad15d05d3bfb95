"""The words of the commands' reports, in English and Japanese: labels, yen, effects and refusals.

Messages of problems and refusals are looked up by code (engine/format/messages.py); this module
holds the labels of the reports around them (run, quote, test, explain, diff, migrate-report).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from engine.format import messages
from engine.model.errors import Refusal

# key: (English, Japanese)
LABELS: dict[str, tuple[str, str]] = {
    # run
    "run.head": ("{program} v{version} as of {as_of}: {applied} applied, {skipped} skipped (already applied), "
                 "{rejected} rejected",
                 "{program} v{version}（{as_of} 時点）: 適用 {applied} 件、スキップ {skipped} 件（適用済み）、拒否 {rejected} 件"),
    "run.members": ("members: {n}", "会員数: {n}"),
    "run.state": ("state", "状態"),
    "run.points": ("points", "ポイント"),
    "run.yen": ("yen value", "円換算"),
    "run.member": ("member", "会員"),
    "run.tier": ("tier", "ランク"),
    "run.total": ("total", "合計"),
    "run.more_members": ("{n} members: list them with --top N or --member ID",
                         "会員 {n} 人: --top N または --member ID で表示します"),
    "run.top": ("top {n} members by valid points", "有効ポイントの多い会員 上位 {n} 人"),
    "run.effects": ("effects: {n}", "対応が必要な事項: {n} 件"),
    "run.more_effects": ("... and {n} more effects (--format json lists them all)",
                         "… ほか {n} 件（--format json ですべて表示します）"),
    "run.unknown_member": ("no member {member} in the ledger", "台帳に会員 {member} はいません"),
    "run.later_refused": ("loyalty run: {n} of the events refused in this run are after --as-of: not listed in "
                          "the report (the exit status counts them)",
                          "loyalty run: この実行で拒否したイベントのうち {n} 件は --as-of より後のため一覧にありません（終了コードには数えています）"),
    "rejected": ("rejected: {reason}", "拒否: {reason}"),
    # points states
    "state.valid": ("valid", "有効"), "state.pending": ("pending", "仮"), "state.held": ("held", "保留"),
    "state.used": ("used", "使用済み"), "state.expired": ("expired", "失効"), "state.void": ("void", "取消"),
    "state.owed": ("owed", "未回収"),
    # effects
    "effect.due": ("{what} for {member}{detail}, due {at}", "{member} に{what}{detail}（期日 {at}）"),
    # quote
    "quote.items_ex_tax": ("items ex. tax", "商品（税抜）"), "quote.fees_ex_tax": ("fees ex. tax", "手数料（税抜）"),
    "quote.shipping_ex_tax": ("shipping ex. tax", "送料（税抜）"), "quote.tax_total": ("tax", "消費税"),
    "quote.grand_total": ("total", "合計"), "quote.to_pay": ("to pay", "お支払い"),
    "quote.redeem": ("redeem: max {max}, applied {applied} ({why})", "ポイント利用: 上限 {max}、利用 {applied}（{why}）"),
    "quote.earn": ("earn: {points} {state} ({rules})", "獲得: {points}（{state}）（{rules}）"),
    "quote.exchange": ("exchange: {points} for {rewards}", "交換: {points} ポイントで {rewards}"),
    "quote.fee": ("; {kind} {yen} ex. tax", "、{kind} {yen}（税抜）"),
    "quote.late": ("past the deadline for this delivery ({last_day}, {rule}): requests made now go with the next delivery",
                   "このお届けの締切（{last_day}、{rule}）を過ぎています。今のご依頼は次回のお届けになります"),
    "quote.on_time": ("requests on time for this delivery (deadline {last_day}, {rule})",
                      "このお届けに間に合います（締切 {last_day}、{rule}）"),
    "quote.error": ("error: {field}: {reason}", "エラー: {field}: {reason}"),
}

EFFECT_TYPES: dict[str, tuple[str, str]] = {
    "gift.due": ("gift", "ギフト"), "gift.notice": ("gift notice", "ギフトのお知らせ"),
    "gift.deferred": ("gift deferred", "ギフトの延期"), "notice.due": ("notice", "お知らせ"),
}
DETAIL_KEYS: dict[str, tuple[str, str]] = {
    "stage": ("stage", "段階"), "number": ("number", "番号"), "round": ("round", "回"),
    "deferred_from": ("deferred from", "延期元"), "order": ("order", "注文"), "of_number": ("of number", "対象番号"),
    "sku": ("sku", "SKU"), "qty": ("qty", "数量"), "reward": ("reward", "特典"),
}


def label(key: str, lang: str = "en", **values: Any) -> str:
    en, ja = LABELS[key]
    return (ja if lang == "ja" else en).format(**values)


def yen(amount: int, lang: str = "en") -> str:
    """¥1,234 in English, 1,234円 in Japanese."""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount):,}円" if lang == "ja" else f"{sign}¥{abs(amount):,}"


def state_name(state: str, lang: str = "en") -> str:
    key = f"state.{state}"
    return label(key, lang) if key in LABELS else state


def effect_words(effect: Mapping[str, Any], lang: str = "en") -> str:
    """An effect in words: "gift for m1: stage 2, number 3, due 2026-05-01 [RC-7]"."""
    i = 1 if lang == "ja" else 0
    what = EFFECT_TYPES.get(effect.get("type", ""), (effect.get("type", ""),) * 2)[i]
    detail = effect.get("detail") or {}
    parts = [f"{DETAIL_KEYS.get(k, (k.replace('_', ' '),) * 2)[i]} {v}" for k, v in detail.items()]
    sep = "、" if lang == "ja" else ", "
    shown = ((f"（{sep.join(parts)}）" if lang == "ja" else f": {sep.join(parts)}") if parts else "")
    text = label("effect.due", lang, what=what, member=effect.get("member", "?"), detail=shown, at=effect.get("at", "?"))
    return f"{text} [{effect['rule']}]" if effect.get("rule") else text


def refusal_words(refusal: Union[Mapping[str, Any], Refusal], lang: str = "en") -> str:
    """A refusal of the run report in ``lang`` (its English ``reason`` unless a code gives Japanese)."""
    if lang != "ja" or not refusal.get("code"):
        return refusal["reason"]
    try:
        body = messages.render(refusal["code"], refusal.get("args") or {}, "ja")
    except (KeyError, IndexError, ValueError):
        return refusal["reason"]
    where = ""
    if refusal.get("line") is not None and refusal.get("event") is None:
        where = f"{refusal['line']} 行目: "
    where += f"イベント {refusal.get('event') or '?'}"
    if refusal.get("field"):
        where += f"、フィールド {refusal['field']}"
    text = f"{where}: {body}"
    return f"{text} [{refusal['rule']}]" if refusal.get("rule") else text


def error_words(error: Mapping[str, Any], lang: str = "en") -> Optional[str]:
    """A quote's error reason in ``lang`` (by code when it has one)."""
    if lang == "ja" and error.get("code"):
        try:
            return messages.render(error["code"], error.get("args") or {}, "ja")
        except (KeyError, IndexError, ValueError):
            pass
    return error.get("reason")
