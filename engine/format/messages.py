"""Messages by code: every problem a program file can have and every refusal of an event, in English
and Japanese.

A problem (engine/model/errors.py ``Problem``) or a refusal (``EventRejected``, ``BadEvent``) carries a
stable ``code`` and its arguments; its text in a language is the catalogue's template for that code,
filled in with the arguments. Positions, names from the file and numbers are arguments and are never
translated. tests/test_messages.py proves every code has both languages and the same arguments in
each.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from engine.model.errors import EventRejected, Pos, Problem

# code: (English, Japanese)
MESSAGES: dict[str, tuple[str, str]] = {
    # yamlpos: reading the file
    "file.empty": ("the file is empty", "ファイルが空です"),
    "file.not_utf8": ("the file is not UTF-8 text", "ファイルが UTF-8 のテキストではありません（文字化けしたバイトがあります）"),
    "file.unreadable": ("cannot read file: {detail}", "ファイルを読めません: {detail}"),
    "yaml.syntax": ("YAML syntax: {detail}", "YAML の書き方の誤り（インデントや記号を確認してください）: {detail}"),
    "yaml.nesting": ("YAML nesting too deep", "YAML の入れ子が深すぎます"),
    "yaml.other": ("YAML: {detail}", "YAML を読めません: {detail}"),
    "yaml.alias_bomb": ("document expands to more than {n} values (alias bomb?)",
                        "文書を展開すると {n} 個を超える値になります（エイリアスの使いすぎ？）"),
    "yaml.merge_key": ("merge keys ('<<') are not supported; write the keys out",
                       "マージキー（'<<'）は使えません。キーを一つずつ書いてください"),
    "yaml.key_not_word": ("a key must be a plain word", "キーは単純な語でなければなりません"),
    "yaml.duplicate_key": ("duplicate key '{key}' (an earlier one is at line {line})",
                           "キー '{key}' が重複しています（先に {line} 行目で書かれています）"),
    "yaml.bad_value": ("cannot read value: {detail}", "値を読めません: {detail}"),
    "yaml.bad_character": ("the file holds a character YAML does not allow ({char})",
                           "YAML で使えない文字（{char}）がファイルに含まれています"),
    # loader: the whole file
    "program.not_mapping": ("a program file is a mapping (program:, name:, versions: ...)",
                            "プログラムファイルはマッピング（program:、name:、versions: …）でなければなりません"),
    "program.unknown_time_zone": ("unknown time zone '{tz}'", "不明なタイムゾーン '{tz}'"),
    # numbers and the schema
    "number.not_finite": ("{field}: must be a finite number (got {value})", "{field}: 有限の数で書いてください（{value} が書かれています）"),
    "number.not_whole": ("{field}: must be a whole number (got {value})", "{field}: 整数で書いてください（{value} が書かれています）"),
    "number.negative": ("{field}: must not be negative (got {value})", "{field}: 負の数は使えません（{value} が書かれています）"),
    "schema.unknown_key": ("unknown key '{key}'", "不明なキー '{key}'"),
    "schema.enum": ("{field}: {value} is not one of {choices}", "{field}: {value} は使えません。使える値: {choices}"),
    "schema.required": ("{field}: {prop} is a required property", "{field}: 必須のキー {prop} がありません"),
    "schema.type": ("{field}: {value} is not of type {types}", "{field}: {value} の型が違います（{types} が必要です）"),
    "schema.maximum": ("{field}: {value} is greater than the maximum of {limit}", "{field}: {value} は最大値 {limit} を超えています"),
    "schema.exclusiveMaximum": ("{field}: {value} is greater than or equal to the maximum of {limit}",
                                "{field}: {value} は {limit} 未満にしてください"),
    "schema.minimum": ("{field}: {value} is less than the minimum of {limit}", "{field}: {value} は最小値 {limit} より小さいです"),
    "schema.exclusiveMinimum": ("{field}: {value} is less than or equal to the minimum of {limit}",
                                "{field}: {value} は {limit} より大きくしてください"),
    "schema.format": ("{field}: {value} is not a {limit}", "{field}: {value} は {limit} の形式ではありません"),
    "schema.pattern": ("{field}: {value} does not match {limit}", "{field}: {value} は書式 {limit} に合いません"),
    "schema.too_short": ("{field}: {value} is too short", "{field}: {value} は短すぎます（要素が足りません）"),
    "schema.too_long": ("{field}: {value} is too long", "{field}: {value} は長すぎます"),
    "schema.empty": ("{field}: {value} should be non-empty", "{field}: {value} を空にはできません"),
    "schema.few_properties": ("{field}: {value} does not have enough properties", "{field}: {value} にキーが足りません"),
    "schema.no_branch": ("{field}: {value} is not valid under any of the given schemas", "{field}: {value} はどの書き方にも合いません"),
    "schema.many_branches": ("{field}: {value} is valid under each of {limit}", "{field}: {value} が複数の書き方に同時に合ってしまいます"),
    "schema.const": ("{field}: {limit} was expected", "{field}: {limit} でなければなりません"),
    "schema.unique": ("{field}: {value} has non-unique elements", "{field}: {value} に同じ要素が重複しています"),
    "schema.other": ("{field}: {detail}", "{field}: 書き方が正しくありません（{detail}）"),
    # loader: meaning
    "rule.unknown": ("unknown rule id '{rule}': declare it under 'rules'", "不明なルールID '{rule}': 'rules' の下で宣言してください"),
    "tier.twice": ("tier '{tier}' is declared twice", "ティア '{tier}' が二度宣言されています"),
    "tier.min_order": ("tier '{tier}' needs a higher min than '{prev}' ({min})",
                       "ティア '{tier}' の min は '{prev}'（{min}）より大きくしてください"),
    "tier.first_min": ("the first tier must start at min 0 (every member has a tier)",
                       "最初のティアは min 0 から始めてください（すべての会員がいずれかのティアに入ります）"),
    "rates.until_before_from": ("'until' ({until}) is before 'from' ({since})", "'until'（{until}）が 'from'（{since}）より前です"),
    "rates.bands_order": ("bands must start at increasing 'from' values", "bands は 'from' の値が大きくなる順に書いてください"),
    "rates.need_tiers": ("rates by tier need a 'tiers' section", "ティア別の率には 'tiers' セクションが必要です"),
    "rates.unknown_tier": ("unknown tier '{tier}'", "不明なティア '{tier}'"),
    "rates.no_rate_last_row": ("no rate for tier '{tier}' in the last rates row",
                               "最後の rates の行にティア '{tier}' の率がありません（このティアに当てはまる行がなくなります）"),
    "migration.first_version": ("the first version has nothing to migrate from", "最初のバージョンには移行元がありません"),
    "migration.op_needs": ("op {op} needs '{key}'", "op {op} には '{key}' が必要です"),
    "catalog.reward_twice": ("reward '{reward}' is declared twice", "特典 '{reward}' が二度宣言されています"),
    "exchange.needs_catalog": ("an 'exchange' section needs a 'catalog' of rewards", "'exchange' セクションには特典の 'catalog' が必要です"),
    "expiry.missing": ("every version needs an 'expiry' section (kind: none if points never expire)",
                       "各バージョンに 'expiry' セクションが必要です（ポイントが失効しないなら kind: none）"),
    "expiry.needs_period": ("expiry kind '{kind}' needs a 'period'", "失効の種類 '{kind}' には 'period' が必要です"),
    "bonus.once_per_member": ("once_per: member is not supported: a bonus is given once per event; "
                              "write a when: that holds once", "once_per: member には対応していません。ボーナスはイベントごとに付きます。一度だけ成り立つ when: を書いてください"),
    "ladder.gift_twice": ("gift number {n} is listed twice", "ギフト番号 {n} が二度書かれています"),
    "ladder.gift_after": ("gift {n} follows gift {after}, which is not listed before it",
                          "ギフト {n} は ギフト {after} の後ですが、ギフト {after} がその前に書かれていません"),
    "ladder.level_twice": ("level '{level}' is declared twice", "レベル '{level}' が二度宣言されています"),
    "ladder.top_up": ("'{level}' is the top level: there is no level above it", "'{level}' は最上位のレベルです。その上のレベルはありません"),
    "ladder.needs_up": ("level '{level}' needs an 'up' step (the levels above it are unreachable)",
                        "レベル '{level}' には 'up' が必要です（上のレベルに上がれません）"),
    "ladder.again_top_only": ("'again' belongs to the top level only", "'again' は最上位のレベルにだけ書けます"),
    "ladder.gifts_need_section": ("level gifts need the ladder's 'gifts' section (its rule_id)",
                                  "レベルのギフトには ladder の 'gifts' セクション（その rule_id）が必要です"),
    "ladder.unknown_level": ("unknown level '{level}'", "不明なレベル '{level}'"),
    "ladder.no_gift_number": ("no gift number {n} in the schedule", "ギフトの予定にギフト番号 {n} がありません"),
    "version.order": ("version {n} must be higher than {m}", "version {n} は {m} より大きくしてください"),
    "version.overlap": ("effective_from {date} overlaps version {n} (from {since}): each version must start later than the one before",
                        "effective_from {date} がバージョン {n}（{since} から）と重なっています。各バージョンは前のバージョンより後に始めてください"),
    # expressions (engine/format/expr.py); {what} is the key the expression stands under
    "expr.not_text": ("{what}: expected text, got {type}", "{what}: 式はテキストで書いてください（{type} が書かれています）"),
    "expr.too_long": ("{what}: longer than {n} characters", "{what}: {n} 文字を超えています"),
    "expr.syntax": ("{what}: syntax error in {source}: {detail}", "{what}: {source} に構文エラーがあります: {detail}"),
    "expr.unparsable": ("{what}: cannot parse {source}", "{what}: {source} を解析できません"),
    "expr.too_deep": ("{what}: nested more than {n} levels deep", "{what}: 入れ子が {n} 段を超えています"),
    "expr.not_allowed": ("{what}: '{node}' is not allowed in program expressions", "{what}: プログラムの式では '{node}' は使えません"),
    "expr.private_name": ("{what}: name '{name}' is not allowed", "{what}: 名前 '{name}' は使えません"),
    "expr.unknown_name_constant": ("{what}: unknown name '{name}'; write {constant}", "{what}: 不明な名前 '{name}'。{constant} と書いてください"),
    "expr.unknown_name_near": ("{what}: unknown name '{name}'; did you mean '{near}'?", "{what}: 不明な名前 '{name}'。'{near}' のことですか？"),
    "expr.unknown_name": ("{what}: unknown name '{name}'; known names: {names}", "{what}: 不明な名前 '{name}'。使える名前: {names}"),
    "expr.call": ("{what}: only min, max, abs, floor, ceil and len can be called",
                  "{what}: 呼び出せる関数は min、max、abs、floor、ceil、len だけです"),
    "expr.arity": ("{what}: {func}() takes {count} argument(s), got {got}", "{what}: {func}() の引数は {count} 個です（{got} 個書かれています）"),
    "expr.long_text": ("{what}: text constant longer than {n} characters", "{what}: 文字列の定数が {n} 文字を超えています"),
    "expr.constant": ("{what}: only numbers, text, True/False and None are allowed as constants",
                      "{what}: 定数に使えるのは数値、テキスト、True/False、None だけです"),
    "expr.huge_number": ("{what}: the number {source} is too large", "{what}: 数 {source} が大きすぎます"),
    "expr.percent_format": ("{what}: text formatting with % is not allowed in program expressions",
                            "{what}: プログラムの式では % による文字列の書式指定は使えません"),
    "expr.always_fails": ("{what}: {part} always fails: {error}", "{what}: {part} はどの入力でも失敗します: {error}"),
}

HINTS: dict[str, tuple[str, str]] = {
    "rates.campaign_last_row": ("a campaign row (multiply/add) needs a row below it that gives the rate",
                                "キャンペーン行（multiply/add）の下に、率を決める行が必要です"),
    "rates.never_matches_all": ("this rate row can never match: row {n} ({rule}, line {line}) above it takes every line",
                                "この率の行には決して当てはまりません: 上の {n} 行目（{rule}、{line} 行）がすべての明細を取ります"),
    "rates.never_matches_same": ("this rate row can never match: row {n} ({rule}, line {line}) above it has the same condition",
                                 "この率の行には決して当てはまりません: 上の {n} 行目（{rule}、{line} 行）が同じ条件です"),
    "changes.whole_and_changed": ("'{section}' is written whole in this version and changed under 'changes': write one of them",
                                  "'{section}' がこのバージョンで丸ごと書かれ、'changes' でも変えられています。どちらか一方にしてください"),
    "changes.no_previous": ("'changes' cannot change '{section}': the version before has no '{section}'",
                            "'changes' で '{section}' は変えられません。前のバージョンに '{section}' がありません"),
    "accounting.not_a_day": ("{text} is not a day of the year (MM-DD)", "{text} は一年の中の日付（MM-DD）ではありません"),
    "diff.two_programs": ("OLD is program '{old}' and NEW is program '{new}': two different programs, not two versions of one",
                          "OLD はプログラム '{old}'、NEW はプログラム '{new}' です。同じプログラムの 2 つの版ではなく、別々のプログラムです"),
    "file.no_events": ("{path}: no such events file", "{path}: イベントファイルがありません"),
    "file.not_regular": ("{path}: not a regular file (give a JSON Lines file of events, or - for standard input)",
                         "{path}: 通常のファイルではありません（イベントの JSON Lines ファイルか、標準入力なら - を指定してください）"),
    "hint.campaign_above": ("put it above the rows whose rates it multiplies", "倍率をかける行より上に置いてください"),
    "hint.first_row_wins_move": ("the first matching row wins: move this row above it",
                                 "最初に当てはまった行が使われます。この行をその上に移してください"),
    "hint.first_row_wins_change": ("the first matching row wins: change or remove one of them",
                                   "最初に当てはまった行が使われます。どちらかを変えるか消してください"),
    "values.no_tier": ("{what}: no tier '{value}' in this program", "{what}: このプログラムにティア '{value}' はありません"),
    "values.no_course": ("{what}: no course '{value}' in this program", "{what}: このプログラムにコース '{value}' はありません"),
    "values.no_payment_method": ("{what}: no payment method '{value}' in this program",
                                 "{what}: このプログラムに支払方法 '{value}' はありません"),
    "values.no_tag": ("{what}: no tag '{value}' in this program",
                      "{what}: このプログラムにタグ '{value}' はありません（tags に宣言されていません）"),
    "values.no_attribute": ("{what}: no attribute '{value}' in this program",
                            "{what}: このプログラムに会員属性 '{value}' はありません（attributes に宣言されていません）"),
    "rates.no_tag": ("no tag '{tag}' in this program", "このプログラムにタグ '{tag}' はありません（tags に宣言されていません）"),
    "hint.tier_names": ("tiers are: {names}", "ティアは {names} です"),
    "hint.course_names": ("courses are: {names}", "コースは {names} です"),
    "hint.payment_method_names": ("payment methods are: {names}", "支払方法は {names} です"),
    "hint.tag_names": ("tags are: {names}", "タグは {names} です"),
    "hint.attribute_names": ("attributes are: {names}", "会員属性は {names} です"),
    "hint.no_tiers": ("the program has no tiers", "このプログラムにはティアがありません"),
    "hint.no_tags": ("the program has no tags", "このプログラムにはタグがありません"),
    "hint.no_attributes": ("the program has no attributes", "このプログラムには会員属性がありません"),
    # liability (engine/run/liability.py)
    "liability.not_month": ("{what}: not a month (YYYY-MM) nor a date (YYYY-MM-DD): {value}",
                            "{what}: 月（YYYY-MM）でも日付（YYYY-MM-DD）でもありません: {value}"),
    "liability.to_before_from": ("--to {end} is before --from {start}", "--to {end} が --from {start} より前です"),
    "liability.cannot_rebuild": ("the outstanding units at {at} cannot be rebuilt: {detail}; close the ledger through "
                                 "that month's end first (loyalty close)",
                                 "{at} 時点の残高を組み立て直せません: {detail}。先にその月末まで締めてください（loyalty close）"),
    "hint.did_you_mean": ("did you mean '{near}'?", "'{near}' のことですか？"),
    "hint.expected_one_of": ("expected one of: {names}", "使えるキー: {names}"),
    "hint.tiers_are": ("tiers are: {names}", "ティアは {names} です"),
    "hint.levels_are": ("levels are: {names}", "レベルは {names} です"),
    "hint.write": ("write {n}", "{n} と書いてください"),
    "hint.iana_zone": ("an IANA zone name such as Asia/Tokyo", "Asia/Tokyo のような IANA のタイムゾーン名を書いてください"),
    "hint.use_again": ("use 'again' to give the top level's gifts again", "最上位のギフトを繰り返すには 'again' を使ってください"),
    # the marketer's slips
    "hint.rate_fraction": ("a rate is a fraction: write {fraction} for {percent}%",
                           "率は小数で書きます。{percent}% なら {fraction} と書いてください"),
    "hint.number_commas": ("write numbers without commas: {n}", "数はカンマなしで書いてください: {n}"),
}

# Refusals of events (engine/core/*, engine/model/events.py, engine/run/*); {what} is the text
# after "event ID, field F: ".
REFUSALS: dict[str, tuple[str, str]] = {
    "event.decode": ("{detail}", "イベントとして読めません（{detail}）"),
    "event.malformed_json": ("malformed JSON: {detail}", "JSON の書き方が正しくありません: {detail}"),
    "event.unknown_type": ("unknown event type {type}", "不明なイベントの種類 {type}"),
    "event.not_time": ("not a time: {value}; give ISO 8601 with an offset (2025-11-04T10:00:00+09:00) or a bare date (2025-11-04)",
                       "時刻ではありません: {value}。オフセット付きの ISO 8601（2025-11-04T10:00:00+09:00）か日付（2025-11-04）で書いてください"),
    "event.tax_rate": ("tax_rate {value} is not a consumption tax rate: give one of {rates}",
                       "tax_rate {value} は消費税率ではありません。{rates} のいずれかを書いてください"),
    "event.bad_string": ("{detail}", "文字列に使えない文字があります（{detail}）"),
    "event.line_too_long": ("the line is longer than {limit:,} bytes (the most one event may take); is this a JSON Lines file of events?",
                            "行が {limit:,} バイトを超えています（1 つのイベントの上限です）。イベントの JSON Lines ファイルですか？"),
    "event.no_lines": ("Expected `array` of length >= 1 (an order with no line must carry exchanges)",
                       "明細（lines）が空です（明細のない注文は交換の申し込み exchanges を伴う場合だけです）"),
    "event.not_iso_time": ("not an ISO 8601 time: {value} ({detail})", "ISO 8601 の時刻ではありません: {value}（{detail}）"),
    "member.unknown": ("unknown member {member}: no member.registered event came before",
                       "不明な会員 {member}: これより前に member.registered のイベントがありません"),
    "member.registered_twice": ("member {member} is already registered", "会員 {member} はすでに登録されています"),
    "event.out_of_order": ("{detail}", "順序が逆です（{detail}）"),
    "event.not_date": ("not a date: {value}", "日付ではありません: {value}"),
    "event.unusable_date": ("not a usable date: {value} ({detail})", "使える日付ではありません: {value}（{detail}）"),
    "points.expires_past": ("expires_on {date} is already past", "expires_on {date} はすでに過ぎています"),
    "points.not_enough": ("asks to {action} {amount} but the member has only {have} {state}",
                          "{amount} を{action_ja}ようとしていますが、会員の {state_ja} は {have} しかありません"),
    "order.already": ("order {order} is already {status}", "注文 {order} はすでに {status} です"),
    "order.delivered_use_return": ("order {order} was delivered: send order.returned for its lines",
                                   "注文 {order} は配達済みです。明細ごとに order.returned を送ってください"),
    "returns.none": ("this program accepts no returns", "このプログラムでは返品を受け付けません"),
    "returns.other": ("{detail}", "返品を受け付けられません（{detail}）"),
    "subscription.state": ("subscription {sub} is {current}; it cannot be {what}", "定期購入 {sub} は {current} です。{what} にはできません"),
    "calendar.unknown": ("{detail}", "休日カレンダーが使えません（{detail}）"),
    "order.placed_twice": ("order {order} was already placed", "注文 {order} はすでに受け付けています"),
    "order.priced": ("{detail}", "注文を受け付けられません（{detail}）"),
    "order.balance_changed": ("the balance changed while the order was priced", "注文の計算中にポイント残高が変わりました"),
    "order.unknown": ("unknown order {order} for member {member}", "会員 {member} の注文 {order} が見つかりません"),
    "order.cannot_ship": ("order {order} is {status}, it cannot ship", "注文 {order} は {status} のため出荷できません"),
    "order.cannot_deliver": ("order {order} is {status}, it cannot be delivered", "注文 {order} は {status} のため配達済みにできません"),
    "expr.failed": ("the expression {source} at {pos} failed: {error}", "{pos} の式 {source} が失敗しました: {error}"),
    "refusal.recorded": ("{detail}", "前回と同じ理由で受け付けません: {detail}"),
}

_ACTIONS_JA = {"use": "使お", "redeem": "使お", "spend": "使お", "hold": "保留にし", "release": "戻そ", "void": "取り消そ",
               "exchange": "交換し"}
_STATES_JA = {"valid": "有効ポイント", "pending": "仮ポイント", "held": "保留ポイント", "used": "使用済みポイント",
              "expired": "失効ポイント", "void": "取消ポイント"}

CATALOGUES = (MESSAGES, HINTS, REFUSALS)

# PyYAML's own words (its "context" and "problem"), for the Japanese text of a YAML syntax error
_YAML_JA: list[tuple[re.Pattern, str]] = [(re.compile(p), t) for p, t in [
    (r"while parsing a flow mapping", "{{ }} のマッピングを読んでいる途中で"),
    (r"while parsing a flow sequence", "[ ] のリストを読んでいる途中で"),
    (r"while parsing a block mapping", "マッピングを読んでいる途中で"),
    (r"while parsing a block collection", "リストを読んでいる途中で"),
    (r"while parsing a flow node", "値を読んでいる途中で"),
    (r"while parsing a block node", "値を読んでいる途中で"),
    (r"while scanning a simple key", "キーを読んでいる途中で"),
    (r"while scanning a quoted scalar", "引用符で囲んだ文字列を読んでいる途中で"),
    (r"while scanning a block scalar", "ブロック文字列を読んでいる途中で"),
    (r"while scanning an alias", "エイリアスを読んでいる途中で"),
    (r"while scanning an anchor", "アンカーを読んでいる途中で"),
    (r"while scanning a tag", "タグを読んでいる途中で"),
    (r"while scanning a plain scalar", "文字列を読んでいる途中で"),
    (r"while parsing a node", "値を読んでいる途中で"),
    (r"expected ',' or '\}', but got (?P<x>.+)", "',' か '}}' があるはずの所に {x} があります（'}}' の閉じ忘れ？）"),
    (r"expected ',' or '\]', but got (?P<x>.+)", "',' か ']' があるはずの所に {x} があります（']' の閉じ忘れ？）"),
    (r"expected <block end>, but found (?P<x>.+)", "インデントが合っていません（{x} があります）"),
    (r"expected <document start>, but found (?P<x>.+)", "文書の始まりがあるはずの所に {x} があります"),
    (r"mapping values are not allowed here", "ここには「キー: 値」を書けません（':' の後の空白やインデントを確認してください）"),
    (r"could not find expected ':'", "':' が見つかりません"),
    (r"did not find expected key", "キーが見つかりません（インデントを確認してください）"),
    (r"did not find expected node content", "値が見つかりません"),
    (r"did not find expected ',' or '\]'", "',' か ']' が見つかりません"),
    (r"did not find expected ',' or '\}'", "',' か '}}' が見つかりません"),
    (r"found unexpected end of stream", "ファイルが途中で終わっています（引用符の閉じ忘れ？）"),
    (r"found undefined alias (?P<x>.+)", "定義されていないエイリアス {x} があります"),
    (r"found character (?P<x>.+) that cannot start any token", "文字 {x} はここに書けません（タブはインデントに使えません）"),
    (r"found unknown escape character (?P<x>.+)", "不明なエスケープ文字 {x} があります"),
    (r"found unexpected ':'", "予期しない ':' があります"),
    (r"expected alphabetic or numeric character, but found (?P<x>.+)", "英数字があるはずの所に {x} があります"),
    (r"expected a comment or a line break, but found (?P<x>.+)", "コメントか改行があるはずの所に {x} があります"),
    (r"found duplicate anchor (?P<x>.+)", "アンカー {x} が重複しています"),
]]


def yaml_words_ja(parts) -> str:
    """PyYAML's words (its context, its problem) in Japanese, each known phrase translated; an
    unknown phrase is kept as it is."""
    out = []
    for part in parts:
        for pattern, template in _YAML_JA:
            m = pattern.fullmatch(part)
            if m:
                part = template.format(**m.groupdict())
                break
        out.append(part)
    return "、".join(out)


def _catalogue_of(code: str) -> Mapping[str, tuple[str, str]]:
    for catalogue in CATALOGUES:
        if code in catalogue:
            return catalogue
    raise KeyError(f"no message with code {code!r}")


def is_code(code: str) -> bool:
    return any(code in catalogue for catalogue in CATALOGUES)


def render(code: str, args: Optional[Mapping[str, Any]] = None, lang: str = "en") -> str:
    """The text of ``code`` in ``lang`` (en, ja), filled in with ``args``."""
    en, ja = _catalogue_of(code)[code]
    values = dict(args or {})
    if lang == "ja":
        if code == "yaml.syntax" and "parts" in values:
            values["detail"] = yaml_words_ja(values["parts"])
        if code == "points.not_enough":
            values.setdefault("action_ja", _ACTIONS_JA.get(str(values.get("action")), str(values.get("action"))))
            values.setdefault("state_ja", _STATES_JA.get(str(values.get("state")), str(values.get("state"))))
        return ja.format(**values)
    return en.format(**values)


def problem(pos: Pos, code: str, hint: Optional[tuple[str, Mapping[str, Any]]] = None, **args: Any) -> Problem:
    """A problem by code; ``hint`` is (hint code, its arguments)."""
    hint_code, hint_args = hint if hint else (None, None)
    return Problem(pos, render(code, args), render(hint_code, hint_args) if hint_code else None,
                   code=code, args=args, hint_code=hint_code, hint_args=hint_args)


def rejected(code: str, field: Optional[str] = None, rule: Optional[str] = None, **args: Any) -> EventRejected:
    """A refusal of an event by code (raise it)."""
    return EventRejected(render(code, args), field, rule, code=code, args=args)


def near_hint(near: list, otherwise: Optional[tuple[str, Mapping[str, Any]]] = None):
    return ("hint.did_you_mean", {"near": near[0]}) if near else otherwise


def problem_text(p: Problem, lang: str = "en") -> tuple[str, Optional[str]]:
    """(message, hint) of a problem in ``lang``."""
    if lang != "ja":
        return p.message, p.hint
    message = render(p.code, p.args, lang) if p.code else p.message
    hint = render(p.hint_code, p.hint_args, lang) if p.hint_code else p.hint
    return message, hint


def refusal_text(code: Optional[str], args: Optional[Mapping[str, Any]], english: str, lang: str = "en") -> str:
    if lang != "ja" or not code:
        return english
    try:
        return render(code, args, lang)
    except (KeyError, IndexError, ValueError):
        return english
