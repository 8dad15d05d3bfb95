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

from engine.model.errors import EventRejected, Pos, Problem, Refusal

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
    # h31 (issues 21, 22): the sharded close, the liability report's sections, the what-if
    "close.jobs_and_cluster": ("loyalty close: --cluster and --jobs are two ways to shard the close: give one",
                               "loyalty close: --cluster と --jobs はどちらも締めを分けて行う方法です。どちらか一方を指定してください"),
    "close.shared_ledger": ("loyalty close: a sharded close (--jobs above 1, --cluster) needs a ledger the workers share "
                            "(a SQLite file or a PostgreSQL URL), not {spec}",
                            "loyalty close: 分割した締め（--jobs 2 以上、--cluster）には、ワーカーが共有できる台帳"
                            "（SQLite ファイルか PostgreSQL の URL）が必要です（{spec} は使えません）"),
    "close.shard_failed": ("loyalty close: {detail}; the members booked stay booked and the close is not recorded: "
                           "run it again to finish",
                           "loyalty close: {detail}。記帳済みの会員はそのまま残り、締めは記録されていません。"
                           "もう一度実行すると残りを記帳します"),
    "liability.not_a_month": ("{what}: not a month (YYYY-MM) nor a date (YYYY-MM-DD): {text}",
                              "{what}: 月（YYYY-MM）でも日付（YYYY-MM-DD）でもありません: {text}"),
    "liability.to_before_from": ("--to {end} is before --from {start}", "--to {end} が --from {start} より前です"),
    "liability.prepaid.period": ("  {date}  base period {start} to {end}: issued ¥{issued}, used ¥{used}, expired ¥{expired}; "
                                 "unused ¥{unused}, deposit ¥{deposit}, due by {due}",
                                 "  {date}  基準期間 {start}〜{end}: 発行額 ¥{issued}、回収額 ¥{used}、失効 ¥{expired}。"
                                 "基準日未使用残高 ¥{unused}、発行保証金 ¥{deposit}、期限 {due}"),
    "diff.card.max_lowered": ("\"max\" requests allowed less", "「最大」の利用申込で使える数が減った注文"),
    "diff.card.refusals_removed": ("refusals the new file removes", "新しいファイルでなくなる拒否"),
    "diff.max_title": ("Requests for \"max\" decided again under NEW ({n}): units used OLD -> NEW",
                       "「最大」の利用申込を NEW で決め直した注文（{n} 件）: 利用数 OLD → NEW"),
    "diff.max_cols": ("member|order|OLD used|NEW used|rule", "会員|注文|OLD の利用数|NEW の利用数|ルール"),
    "diff.settings_title": ("Settings the edit changes, by rule", "この変更で変わる設定（ルール別）"),
    "diff.settings_cols": ("rule|change|written at", "ルール|変更|書かれている場所"),
    "diff.setting.changed": ("changed", "変更"),
    "diff.setting.added": ("added (only in NEW)", "追加（NEW のみ）"),
    "diff.setting.removed": ("removed (only in OLD)", "削除（OLD のみ）"),
    "diff.as_of_after_history": ("version {version} starts on {starts}, after the last event ({last}): compared as of "
                                 "the end of its first day, its switch and first effects included",
                                 "バージョン {version} は最後のイベント（{last}）より後の {starts} に始まります。その初日の終わり"
                                 "の時点で比べます（切り替えと最初の効果を含む）"),
    "liability.html.breakage": ("Closes, late entries and breakage (expected {expected})",
                                "締め・遅れて記帳された分・失効率（見込み {expected}）"),
    "liability.html.breakage_cols": ("month|closed|closing from|late entries|late units|late yen|observed breakage|"
                                     "window|expired in window|used in window|contract liability ¥",
                                     "月|締め済み|期末残高の出所|遅れた記帳|遅れた単位|遅れた円|実績失効率|"
                                     "集計期間|期間内の失効|期間内の利用|契約負債（円）"),
    "liability.html.prepaid": ("Prepaid (資金決済法): base dates, deposit {share} above ¥{threshold}",
                               "前払式支払手段（資金決済法）: 基準日、¥{threshold} を超えると {share} を供託"),
    "liability.html.prepaid_cols": ("base date|base period|issued ¥|used ¥|expired ¥|voided ¥|unused ¥|above threshold|"
                                    "deposit ¥|due",
                                    "基準日|基準期間|発行額（円）|回収額（円）|失効（円）|取消（円）|基準日未使用残高（円）|"
                                    "基準額超|発行保証金（円）|期限"),
    "hint.number_commas_flow": ("inside {{ }} a comma ends the value: write {key}: {n}, without commas",
                                "{{ }} の中ではカンマで値が区切られます。カンマなしで {key}: {n} と書いてください"),
    "hint.number_plain": ("write the number alone, without ¥, 円 or commas: {n}",
                          "数だけを書いてください（¥、円、カンマは付けません）: {n}"),
    "hint.number_halfwidth": ("write the number in half-width digits: {n}", "数は半角数字で書いてください: {n}"),
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

# What makes a quote's cart refusable (engine/core/orders.py, rewards.py), and the service's and the
# Python API's own refusals (engine/shell/service.py, api.py): each a Refusal by code.
ANSWERS: dict[str, tuple[str, str]] = {
    "event.refused": ("{detail}", "受け付けられません（{detail}）"),
    "exchange.no_catalog": ("this program has no reward catalog", "このプログラムには特典のカタログがありません"),
    "exchange.payment_refused": ("{reason}", "この支払方法では特典と交換できません（{reason}）"),
    "exchange.needs_product_order": ("a reward ships only together with a product order",
                                     "特典は商品の注文と一緒にだけお届けします"),
    "exchange.unknown_reward": ("unknown reward {reward}; the catalog has {rewards}",
                                "不明な特典 {reward}。カタログにあるのは {rewards} です"),
    "exchange.guest": ("a guest order cannot exchange rewards (no member balance)",
                       "ゲストの注文では特典と交換できません（会員のポイント残高がありません）"),
    "exchange.balance_short": ("the rewards need {units} but the member's valid balance is {balance}",
                               "特典には {units} ポイントが必要ですが、会員の有効ポイントは {balance} です"),
    "redeem.points_and_credits": ("give either points or credits, not both",
                                  "points か credits のどちらか一方だけを指定してください"),
    "redeem.over_limit": ("asks to use {asked}, but at most {max} can be used: {why}",
                          "{asked} を使おうとしていますが、使えるのは最大 {max} です（{why}）"),
    "quote.unknown_member": ("unknown member {member}", "不明な会員 {member}"),
    "quote.bad_time": ("{detail}", "時刻を読めません（{detail}）"),
    "quote.fault": ("the engine could not price this cart ({detail})", "エンジンがこのカートを計算できませんでした（{detail}）"),
    "service.fault": ("the engine could not apply it ({detail}); nothing changed",
                      "エンジンが適用できませんでした（{detail}）。何も変わっていません"),
    "service.years": ("{value} is outside the years this service accepts ({first}-{last})",
                      "{value} はこのサービスが受け付ける年（{first}〜{last} 年）の範囲外です"),
}

_ACTIONS_JA = {"use": "使お", "redeem": "使お", "spend": "使お", "hold": "保留にし", "release": "戻そ", "void": "取り消そ",
               "exchange": "交換し"}
_STATES_JA = {"valid": "有効ポイント", "pending": "仮ポイント", "held": "保留ポイント", "used": "使用済みポイント",
              "expired": "失効ポイント", "void": "取消ポイント"}

CATALOGUES: tuple[dict[str, tuple[str, str]], ...] = (MESSAGES, HINTS, REFUSALS, ANSWERS)

# --- the commands' own words (issue 20: test, explain, diff and its HTML report, migrate-report,
# close, liability, db): their error lines by code, their labels and sentences. Names from the file,
# rule ids and numbers are arguments, never translated.
COMMAND_WORDS: dict[str, tuple[str, str]] = {
    # error lines the commands print
    "cmd.no_ledger": ("loyalty {command}: no ledger at {spec}", "loyalty {command}: {spec} に台帳がありません"),
    "cmd.store": ("loyalty {command}: {detail}", "loyalty {command}: 台帳を使えません（{detail}）"),
    "cmd.store_open": ("{detail}", "台帳を開けません（{detail}）"),
    "cmd.as_of": ("--as-of: {detail}", "--as-of: 時刻として使えません（{detail}）"),
    "cmd.as_of_close": ("--as-of: not an ISO 8601 time with offset, nor a date: {value} ({detail})",
                        "--as-of: オフセット付きの ISO 8601 の時刻でも日付でもありません: {value}（{detail}）"),
    "cmd.cannot_write": ("{path}: {detail}", "{path}: 書き込めません（{detail}）"),
    "cmd.cannot_read": ("{path}: {detail}", "{path}: 読めません（{detail}）"),
    "run.cluster_and_jobs": ("loyalty run: --cluster and --jobs are two ways to replay in parallel: give one",
                             "loyalty run: --cluster と --jobs はどちらも並列に再生する方法です。どちらか一方を指定してください"),
    "run.jobs_memory": ("loyalty run: --jobs above 1 needs a ledger the worker processes share (a SQLite file or a "
                        "PostgreSQL URL): with --db :memory: the members would stay in the workers",
                        "loyalty run: --jobs を 2 以上にするには、ワーカーが共有する台帳（SQLite ファイルか PostgreSQL の URL）が"
                        "必要です。--db :memory: では会員がワーカーの中に残ってしまいます"),
    "cmd.warning": ("warning: {text}", "警告: {text}"),
    "cmd.html_written": ("HTML report: {path}", "HTML レポート: {path}"),
    "cmd.no_program_file": ("{path}: no such program file", "{path}: プログラムファイルがありません"),
    # close
    "close.done": ("{program}: closed through {through}: {members} member(s), {booked} with happenings booked, "
                   "{entries} ledger entries, {effects} effects ({note})",
                   "{program}: {through} まで締めました: 会員 {members} 人、うち {booked} 人に記帳、台帳の記録 {entries} 件、"
                   "対応事項 {effects} 件（{note}）"),
    "close.recorded": ("recorded", "記録しました"),
    "close.already": ("already closed through {previous}: not recorded again",
                      "{previous} まで締め済みです。重ねては記録しません"),
    # liability (its refusals: liability.* among the hints above)
    "liability.head": ("{program}: points liability {start} to {end} ({kind} {unit}; expected breakage {breakage})",
                       "{program}: ポイント負債 {start}〜{end}（{kind}の{unit}、見込み失効率 {breakage}）"),
    "liability.kind.free": ("free", "無償"), "liability.kind.prepaid": ("prepaid", "有償（前払式）"),
    "liability.units": ("units", "ポイント数"), "liability.yen": ("yen", "円"),
    "liability.month": ("month", "月"), "liability.measure": ("measure", "単位"),
    "liability.col.opening": ("opening", "期首"), "liability.col.earn": ("earn", "獲得"),
    "liability.col.bonus": ("bonus", "ボーナス"), "liability.col.grant": ("grant", "付与"),
    "liability.col.migration": ("migration", "移行"), "liability.col.used": ("used", "使用"),
    "liability.col.restored": ("restored", "戻し"), "liability.col.expired": ("expired", "失効"),
    "liability.col.voided": ("voided", "取消"), "liability.col.converted": ("converted", "換算"),
    "liability.col.closing": ("closing", "期末"), "liability.col.roll_forward": ("roll_forward", "繰越計算"),
    "liability.col.difference": ("difference", "差異"), "liability.col.closed": ("closed", "締め済み"),
    "liability.col.late_entries": ("late_entries", "遅れた記録"), "liability.col.late": ("late", "遅れ"),
    "liability.col.observed_breakage": ("observed_breakage", "実績失効率"),
    "liability.col.observed": ("observed", "実績失効率"),
    "liability.col.contract_liability_yen": ("contract_liability_yen", "契約負債（円）"),
    "liability.col.liability_yen": ("liability ¥", "契約負債（円）"),
    # the CSV's further tables (breakage windows and late entries, outstanding by expiry, prepaid periods)
    "liability.col.closing_from": ("closing_from", "締め対象期間の始まり"),
    "liability.col.late_units": ("late_units", "遅れた記録（ポイント）"), "liability.col.late_yen": ("late_yen", "遅れた記録（円）"),
    "liability.col.window_from": ("window_from", "失効率の期間の始まり"),
    "liability.col.window_to": ("window_to", "失効率の期間の終わり"),
    "liability.col.window_expired": ("window_expired", "期間中の失効"), "liability.col.window_used": ("window_used", "期間中の使用"),
    "liability.col.expected_breakage": ("expected_breakage", "想定失効率"), "liability.col.as_of": ("as_of", "時点"),
    "liability.col.base_date": ("base_date", "基準日"), "liability.col.period_from": ("period_from", "期間の始まり"),
    "liability.col.period_to": ("period_to", "期間の終わり"),
    "liability.col.issued_units": ("issued_units", "発行（ポイント）"), "liability.col.issued_yen": ("issued_yen", "発行（円）"),
    "liability.col.used_units": ("used_units", "使用（ポイント）"), "liability.col.used_yen": ("used_yen", "使用（円）"),
    "liability.col.expired_yen": ("expired_yen", "失効（円）"), "liability.col.voided_yen": ("voided_yen", "取消（円）"),
    "liability.col.unused_units": ("unused_units", "未使用残高（ポイント）"),
    "liability.col.unused_yen": ("unused_yen", "未使用残高（円）"),
    "liability.col.above_threshold": ("above_threshold", "基準額超過"), "liability.col.deposit_yen": ("deposit_yen", "供託額（円）"),
    "liability.col.due": ("due", "供託期限"),
    "liability.col.identity": ("identity", "検算"), "liability.col.expires": ("expires", "失効月"),
    "liability.ok": ("ok", "一致"), "liability.diff": ("DIFF {n}", "差異 {n}"),
    "liability.yes": ("yes", "済"), "liability.no": ("no", "未"),
    "liability.by_expiry": ("outstanding by expiry month at {at}:", "失効月別の未使用残高（{at} 時点）:"),
    "liability.by_expiry_row": ("  {month:<8}{units:>12} units {yen:>14} yen", "  {month:<8}{units:>12} ポイント {yen:>14} 円"),
    "liability.by_expiry_title": ("Outstanding by expiry month at {at}", "失効月別の未使用残高（{at} 時点）"),
    "liability.prepaid": ("prepaid (資金決済法): deposit {share} above {threshold}",
                          "前払式（資金決済法）: {threshold} を超えたら {share} を供託"),
    "liability.unused": ("  {date}  unused {yen}", "  {date}  未使用残高 {yen}"),
    "liability.deposit": ("  DEPOSIT {yen}", "  供託 {yen}"),
    "liability.identity_holds": ("roll-forward identity holds every month", "繰越の検算はすべての月で一致しています"),
    "liability.identity_fails": ("roll-forward identity FAILS in some month: happenings due but not booked? run loyalty close",
                                 "繰越の検算が一致しない月があります。期日が来たのに記帳されていない事項はありませんか？ loyalty close を実行してください"),
    "liability.title": ("{program} liability", "{program} ポイント負債"),
    "liability.html_head": ("{program}: points liability {start} to {end}", "{program}: ポイント負債 {start}〜{end}"),
    "liability.html_sub": ("{kind} {unit}; expected breakage {breakage}", "{kind}の{unit}、見込み失効率 {breakage}"),
    # migrate-report
    "migrate.no_later": ("no later version to migrate to", "移行先の新しいバージョンがありません"),
    "migrate.not_later": ("version {n} is not a later version of {program}", "バージョン {n} は {program} の新しいバージョンではありません"),
    "migrate.head": ("{program}: version {old} -> {new} at {at}", "{program}: バージョン {old} → {new}（{at} に切り替え）"),
    "migrate.member": ("member", "会員"), "migrate.units_before": ("units before", "移行前ポイント"),
    "migrate.yen_before": ("yen before", "移行前の円"), "migrate.units_after": ("units after", "移行後ポイント"),
    "migrate.yen_after": ("yen after", "移行後の円"), "migrate.check": ("check", "確認"),
    "migrate.ok": ("ok", "問題なし"), "migrate.loses": ("LOSES VALUE", "価値が減ります"),
    "migrate.total": ("total", "合計"),
    # db
    "db.not_a_ledger": ("{path}: neither a PostgreSQL URL (postgresql://user@host:port/dbname) nor an existing SQLite "
                        "ledger (a new SQLite ledger creates its schema itself)",
                        "{path}: PostgreSQL の URL（postgresql://user@host:port/dbname）でも既存の SQLite 台帳でもありません"
                        "（新しい SQLite 台帳はスキーマを自分で作ります）"),
    "db.needs_psycopg": ("a PostgreSQL --db needs psycopg: pip install 'loyalty-engine[pg]'",
                         "PostgreSQL の --db には psycopg が必要です: pip install 'loyalty-engine[pg]'"),
    "db.sqlite_at": ("SQLite ledger {path}: schema at version {version} ({done})",
                     "SQLite 台帳 {path}: スキーマはバージョン {version}（{done}）"),
    "db.pg_at": ("{name}: schema at version {version} ({done})", "{name}: スキーマはバージョン {version}（{done}）"),
    "db.pg_name": ("PostgreSQL store {url}", "PostgreSQL の台帳 {url}"),
    "db.current": ("already current", "すでに最新です"),
    "db.upgraded": ("upgraded from version {n}", "バージョン {n} から更新しました"),
    "db.applied": ("applied migration(s) {list}", "移行 {list} を適用しました"),
    "db.error": ("{name}: {detail}", "{name}: データベースのエラー（{detail}）"),
    # test
    "test.note": ("note: {text}", "注: {text}"),
    "test.no_cases": ("{path}: no cases ({tests} is missing)", "{path}: ケースがありません（{tests} がありません）"),
    "test.not_a_path": ("{path}: not a directory, a program or a tests file",
                        "{path}: ディレクトリでも、プログラムでも、テストファイルでもありません"),
    "test.file_head": ("{path} ({program}): {n} case(s)", "{path}（{program}）: ケース {n} 件"),
    "test.ok": ("  ok    {name} [{rules}]", "  成功  {name} [{rules}]"),
    "test.fail": ("  FAIL  {name} [{rules}]  ({where})", "  失敗  {name} [{rules}]  ({where})"),
    "test.error": ("        error: {error}", "        エラー: {error}"),
    "test.rules": ("        rules involved: {rules}", "        関わるルール: {rules}"),
    "test.no_files": ("no tests files found (programs/<id>.tests.yaml)",
                      "テストファイルが見つかりません（programs/<id>.tests.yaml）"),
    "test.summary": ("{passed} passed, {failed} failed", "成功 {passed} 件、失敗 {failed} 件"),
    "test.failure": ("{what}: expected {expected}, got {actual}", "{what}: 期待値 {expected}、実際は {actual}"),
    "test.at_line": ("line {line}: {text}", "{line} 行目: {text}"),
    "test.missing": ("(missing)", "（ありません）"),
    "test.count": ("{what} (count)", "{what}（件数）"),
    "test.the_item": ("the item: {item}", "その項目: {item}"),
    "test.not_found": ("expected but not found: {item}", "期待したのに見つからないもの: {item}"),
    "test.not_expected": ("not expected: {item}", "期待していないもの: {item}"),
    "test.rejected_events": ("rejected events", "拒否されたイベント"),
    "test.event": ("event {event}", "イベント {event}"),
    "test.applied": ("applied", "適用"), "test.rejected": ("rejected", "拒否"),
    "test.member": ("member {member}", "会員 {member}"),
    "test.registered": ("registered", "登録済み"), "test.unknown_member": ("unknown member", "不明な会員"),
    "test.quote": ("quote", "見積もり"), "test.cart_under_quote": ("a cart under 'quote:'", "'quote:' の下のカート"),
    "test.none": ("none", "なし"), "test.quote_errors": ("quote errors", "見積もりのエラー"),
    "test.unreadable": ("{path}:1:1: cannot read file: {detail}", "{path}:1:1: ファイルを読めません: {detail}"),
    "test.no_program": ("{path}:1:1: no program {program} beside this tests file",
                        "{path}:1:1: このテストファイルの隣にプログラム {program} がありません"),
    "test.other_program": ("{pos}: cases are for program '{want}', but {path} is program '{got}'",
                           "{pos}: ケースはプログラム '{want}' 用ですが、{path} はプログラム '{got}' です"),
    # explain: errors
    "explain.no_ledger": ("{db}: no such ledger (run `loyalty run {program} EVENTS --db {db}` first)",
                          "{db}: 台帳がありません（先に `loyalty run {program} EVENTS --db {db}` を実行してください）"),
    "explain.not_member": ("member {member}: not in the ledger {db}", "会員 {member}: 台帳 {db} にいません"),
    "explain.not_yet": ("member {member}: not registered as of {at} in the ledger {db}",
                        "会員 {member}: 台帳 {db} では {at} の時点でまだ登録されていません"),
    # explain: the story
    "explain.event": ("event {id}", "イベント {id}"),
    "explain.event_kind": ("event {id}, {kind}", "イベント {id}、{kind}"),
    "explain.ev.member.registered": ("signing up", "入会"), "explain.ev.order.placed": ("order placed", "注文"),
    "explain.ev.order.shipped": ("order shipped", "出荷"), "explain.ev.order.delivered": ("order delivered", "配達"),
    "explain.ev.order.cancelled": ("order cancelled", "注文のキャンセル"),
    "explain.ev.order.returned": ("items returned", "返品"), "explain.ev.review.posted": ("review posted", "レビュー投稿"),
    "explain.ev.points.granted": ("points granted by the shop", "ショップによるポイント付与"),
    "explain.ev.points.held": ("points put on hold", "ポイントの保留"),
    "explain.ev.points.released": ("hold released", "保留の解除"),
    "explain.head_earn": ("{amount} earned on order {order}{tier}, placed {day} ({src}).",
                          "{amount}: 注文 {order} で獲得{tier}、{day} の注文（{src}）。"),
    "explain.head_tier": (" (the member's tier then: {tier})", "（当時の会員ランク: {tier}）"),
    "explain.head_bonus": ("{amount}, {on}, on {day} ({src}).", "{amount}: {on}、{day} に付与（{src}）。"),
    "explain.bonus.signup": ("sign-up bonus", "入会ボーナス"), "explain.bonus.review": ("review bonus", "レビューボーナス"),
    "explain.bonus.birthday": ("birth-month bonus", "誕生月ボーナス"), "explain.bonus.other": ("bonus", "ボーナス"),
    "explain.head_limited": ("{amount}, limited-time points granted on {day}{end} ({src}).",
                             "{amount}: 期間限定ポイント、{day} に付与{end}（{src}）。"),
    "explain.use_by": (", to be used by {day}", "、{day} までに利用"),
    "explain.head_conversion": ("{amount} from converting earlier {unit} on {day}, when program version {version} came "
                                "into force ({src}).",
                                "{amount}: 以前の{unit}の換算分、{day}、プログラムのバージョン {version} の開始時（{src}）。"),
    "explain.head_adjustment": ("{amount} rounding up the conversion on {day}, when program version {version} came into "
                                "force ({src}).",
                                "{amount}: 換算の端数の切り上げ分、{day}、プログラムのバージョン {version} の開始時（{src}）。"),
    "explain.head_grant": ("{amount} granted by the shop on {day}, reason: {reason} ({src}).",
                           "{amount}: {day} にショップが付与、理由: {reason}（{src}）。"),
    "explain.head_other": ("{amount} ({kind}) on {day} ({src}).", "{amount}（{kind}）、{day} に記帳（{src}）。"),
    "explain.by_shop": ("No program rule made these: the shop granted them (points.granted), under program version {version}.",
                        "プログラムのルールによるものではありません。ショップが付与しました（points.granted、プログラムのバージョン {version}）。"),
    "explain.rule_at": ("Rule {rule}, program version {version}, written at {where}.",
                        "ルール {rule}、プログラムのバージョン {version}。{where}に書かれています。"),
    "explain.rule": ("Rule {rule}, program version {version}.", "ルール {rule}、プログラムのバージョン {version}。"),
    "explain.site": ("line {line} ({section}: {what})", "{line} 行目（{section}: {what}）"),
    "explain.line": ("line {line}", "{line} 行目"),
    "explain.step_rule": ("rule {rule}", "ルール {rule}"),
    "explain.step_rule_version": ("rule {rule}, version {version}", "ルール {rule}、バージョン {version}"),
    "explain.validate": ("{n} became valid on {day}: the order shipped ({src}; {rule}).",
                         "{n}が {day} に有効になりました。注文が出荷されました（{src}、{rule}）。"),
    "explain.exchange": ("{n} exchanged for a reward on {day}{on} ({src}; {rule}).",
                         "{n}を {day} に{on}特典と交換しました（{src}、{rule}）。"),
    "explain.with_order": (" with order {order}", "注文 {order} で"),
    "explain.convert": ("{n} converted on {day} into the unit of program version {version}, when that version came into "
                        "force ({rule}); the new {unit} are listed as their own lots.",
                        "{n}は {day}、プログラムのバージョン {version} の開始時にその単位へ換算されました（{rule}）。"
                        "新しい{unit}は別の行に示します。"),
    "explain.spend": ("{n} used on {day}{on} ({src}; {rule}).", "{n}を {day} に{on}使いました（{src}、{rule}）。"),
    "explain.on_order": (" on order {order}", "注文 {order} で"),
    "explain.expire": ("{n} expired on {day}: {why}.", "{n}が {day} に失効しました: {why}。"),
    "explain.void": ("{n} voided on {day}: {why} ({src}; {rule}).", "{n}が {day} に取り消されました: {why}（{src}、{rule}）。"),
    "explain.void.cancelled": ("the order was cancelled", "注文がキャンセルされました"),
    "explain.void.returned": ("items of the order were returned; the order now earns only on the kept items",
                              "注文の商品が返品されました。この注文には残った商品の分だけポイントが付きます"),
    "explain.void.other": ("the order no longer earns them", "この注文ではもうポイントが付きません"),
    "explain.clawback": ("{n} taken back on {day} to cover points of a returned or cancelled order that had already been "
                         "used ({src}; {rule}).",
                         "{n}を {day} に回収しました。返品またはキャンセルされた注文のポイントがすでに使われていたためです（{src}、{rule}）。"),
    "explain.restore": ("{n} given back on {day}: they had been used on an order that was cancelled or returned ({src}; {rule}).",
                        "{n}を {day} に戻しました。キャンセルまたは返品された注文で使われていたポイントです（{src}、{rule}）。"),
    "explain.hold": ("{n} put on hold on {day} by the shop ({src}); they cannot be used until released.",
                     "{n}が {day} にショップにより保留になりました（{src}）。解除されるまで使えません。"),
    "explain.release": ("{n} released from hold on {day} ({src}).", "{n}の保留が {day} に解除されました（{src}）。"),
    "explain.moved": ("{n} moved from {old} to {new} on {day} ({action}, {src}; {rule}).",
                      "{n}が {day} に{old}から{new}になりました（{action}、{src}、{rule}）。"),
    "explain.why_limited": ("limited-time points end on the date set when they were issued, {last} ({rule})",
                            "期間限定ポイントは付与のときに決めた日 {last} で終わります（{rule}）"),
    "explain.why_rolling": ("the last valid day was {last}, {period} after the member last received points ({acquired}), "
                            "and no points came in after that; expired points are not restored ({rule})",
                            "有効期限は最後にポイントを受け取った日（{acquired}）から {period}後の {last} でした。"
                            "その後ポイントの受け取りがなく失効しました。失効したポイントは戻りません（{rule}）"),
    "explain.why_per_grant": ("points last {period} from the day they were given; the last valid day was {last} ({rule})",
                              "ポイントは付与日から {period}有効です。有効期限は {last} でした（{rule}）"),
    "explain.why_last": ("the last valid day was {last} ({rule})", "有効期限は {last} でした（{rule}）"),
    "explain.years": ("{n} years", "{n} 年"), "explain.year": ("{n} year", "{n} 年"),
    "explain.months": ("{n} months", "{n} か月"), "explain.month": ("{n} month", "{n} か月"),
    "explain.days": ("{n} days", "{n} 日"), "explain.day": ("{n} day", "{n} 日"),
    "explain.left": ("Left now: {parts}.", "残り: {parts}。"), "explain.nothing": ("nothing", "なし"),
    "explain.left_part": ("{units} {state}", "{state}が {units}"),
    "explain.valid_until": (" (valid until {day})", "（{day} まで有効）"),
    "explain.waiting": (" (waiting for the order to ship)", "（注文の出荷待ち）"),
    "explain.who": ("Member {member}: {name} ({program}), as of {at} ({tz}).",
                    "会員 {member}: {name}（{program}）、{at} 時点（{tz}）。"),
    "explain.file": ("Program file: {file}.", "プログラムファイル: {file}。"),
    "explain.rebuilt_events": ("Note: the ledger has moved on since then; this is the balance as it was on {day}, "
                               "rebuilt from the member's events up to that moment.",
                               "注: 台帳はその後も進んでいます。これは {day} 時点の残高で、その時点までの会員のイベントから組み立て直したものです。"),
    "explain.rebuilt_entries": ("Note: the ledger has moved on since then; this is the balance as it was on {day}, "
                                "rebuilt from the ledger entries up to that moment.",
                                "注: 台帳はその後も進んでいます。これは {day} 時点の残高で、その時点までの台帳の記録から組み立て直したものです。"),
    "explain.balance": ("Balance: {units} can be used now{first}.", "残高: 今使えるのは {units}{first}。"),
    "explain.first_until": ("; the first of them are valid until {day}", "（最も早く期限が来る分は {day} まで有効）"),
    "explain.also": ("Also {parts}.", "ほかに {parts}。"),
    "explain.pending": ("{units} pending (waiting for shipment)", "仮 {units}（出荷待ち）"),
    "explain.on_hold": ("{units} on hold", "保留 {units}"),
    "explain.in_all": ("In all {units} received: {used} used, {expired} expired, {void} voided.",
                       "受け取った合計 {units}: 使用 {used}、失効 {expired}、取消 {void}。"),
    "explain.converted": ("At a program version change {units} were converted into {made} new {unit}.",
                          "プログラムのバージョン変更で {units}が新しい{unit} {made} に換算されました。"),
    "explain.owes": ("The member still owes {units} from a return; they come off the next points.",
                     "返品による未回収が {units} 残っています。次に付くポイントから差し引きます。"),
    "explain.none_yet": ("The member has received no points yet.", "この会員はまだポイントを受け取っていません。"),
    "explain.at_once": ("Valid at once.", "すぐに有効。"),
    "explain.until_ships": ("Pending until the order ships.", "注文の出荷までは仮ポイント。"),
    "explain.rules_seen": ("Rules mentioned ({file}):", "出てきたルール（{file}）:"),
    "explain.patched": ("Versions that change single keys (every other setting as in the version before):",
                        "一部のキーだけを変えるバージョン（ほかの設定は前のバージョンと同じ）:"),
    "explain.patched_row": ("  v{n} from {day}: {keys}", "  v{n}（{day} から）: {keys}"),
    # explain: what a setting is (rule sites)
    "explain.what.member discount": ("member discount", "会員割引"), "explain.what.member tiers": ("member tiers", "会員ランク"),
    "explain.what.earning": ("earning", "ポイント獲得"), "explain.what.using points": ("using points", "ポイント利用"),
    "explain.what.cap per order": ("cap per order", "1 注文の利用上限"),
    "explain.what.minimum left to pay": ("minimum left to pay", "最低支払額"),
    "explain.what.limited-time points": ("limited-time points", "期間限定ポイント"),
    "explain.what.returns and cancellations": ("returns and cancellations", "返品とキャンセル"),
    "explain.what.rate_row": ("earn rate row {n}: {rate}{cond}", "獲得率の {n} 行目: {rate}{cond}"),
    "explain.what.when": (" when {source}", "（条件 {source}）"),
    "explain.what.by": ("by {by} {values}", "{by} 別 {values}"),
    "explain.what.expiry": ("expiry ({kind})", "失効（{kind}）"),
    "explain.what.bonus": ("bonus on {on}: {units}", "{on} のボーナス: {units}"),
    # diff
    "diff.cluster_stdin": ("loyalty diff: --cluster reads EVENTS twice: give a file or a folder, not standard input",
                           "loyalty diff: --cluster は EVENTS を 2 回読みます。標準入力ではなくファイルかフォルダを指定してください"),
    "diff.old": ("OLD", "旧"), "diff.new": ("NEW", "新"), "diff.change": ("change", "差"),
    "diff.sides": ("[bold]OLD[/] {old_path} ({old_program} v{old_version})  ->  [bold]NEW[/] {new_path} "
                   "({new_program} v{new_version}), as of {as_of}",
                   "[bold]旧[/] {old_path}（{old_program} v{old_version}） → [bold]新[/] {new_path}"
                   "（{new_program} v{new_version}）、{as_of} 時点"),
    "diff.no_change": ("no change", "変化なし"), "diff.none": ("none", "なし"),
    "diff.headline": ("Headline", "要点"),
    "diff.cost": ("cost to the shop", "ショップの費用"),
    "diff.liability_change": ("change in outstanding liability", "未使用ポイントの負債の変化"),
    "diff.liability": ("outstanding liability", "未使用ポイントの負債"),
    "diff.paid": ("customers paid", "お客様の支払額"),
    "diff.refused_new": ("refusals the new file causes", "新しいファイルで増える拒否"),
    "diff.clamped_delta": ("redemptions clamped (new - old)", "上限で減らしたポイント利用（新 − 旧）"),
    "diff.clamped_units": ("({n} units)", "（{n} ポイント）"),
    "diff.clamped": ("redemptions clamped", "上限で減らしたポイント利用"),
    "diff.members_changed": ("members changed", "変わる会員"),
    "diff.of": ("{n} of {total}", "{total} 人中 {n} 人"),
    "diff.totals": ("Totals", "合計"),
    "diff.members_in": ("members in {tier}", "{tier} の会員数"),
    "diff.events_rejected": ("events rejected", "拒否されたイベント"),
    "diff.by_rule": ("What changes, by the rule that produced it", "ルールごとの変化"),
    "diff.rule": ("rule", "ルール"), "diff.written_at": ("written at", "書かれている場所"),
    "diff.change_new_old": ("change (NEW − OLD)", "変化（新 − 旧）"),
    "diff.members": ("Members", "会員"), "diff.members_changing": ("Members whose figures change", "数字が変わる会員"),
    "diff.member": ("member", "会員"), "diff.tier": ("tier", "ランク"),
    "diff.granted_old": ("granted OLD", "付与（旧）"), "diff.granted_new": ("granted NEW", "付与（新）"),
    "diff.dates": ("dates", "日付"),
    "diff.short.granted": ("Δ granted", "Δ 付与"), "diff.short.used": ("Δ used", "Δ 使用"),
    "diff.short.expired": ("Δ expired", "Δ 失効"), "diff.short.void": ("Δ void", "Δ 取消"),
    "diff.short.outstanding": ("Δ outst.", "Δ 未使用"), "diff.short.cost_yen": ("Δ cost ¥", "Δ 費用（円）"),
    "diff.short.to_pay_yen": ("Δ paid ¥", "Δ 支払（円）"), "diff.short.clamped": ("clamped", "上限適用"),
    "diff.no_member_changes": ("No member's figures change.", "数字が変わる会員はいません。"),
    "diff.stage_changes": ("Stage changes that move", "時期が変わるステージ"),
    "diff.effect_changes": ("Effects that move, appear or go", "時期が変わる・増える・なくなる対応事項"),
    "diff.order_tier_changes": ("Orders placed at another tier", "別のランクで受けた注文"),
    "diff.more": ("  ... and {n} more (--all lists them)", "  … ほか {n} 件（--all ですべて表示します）"),
    "diff.clamped_new": ("Redemptions clamped under NEW", "新で上限により減らしたポイント利用"),
    "diff.asked_allowed": ("asked -> allowed", "申し込み → 認めた分"),
    "diff.rejected_only_new": ("Rejected under NEW only", "新でだけ拒否"),
    "diff.rejected_only_old": ("Rejected under OLD only", "旧でだけ拒否"),
    "diff.events_only_new": ("Events rejected under NEW only", "新でだけ拒否されたイベント"),
    "diff.events_only_old": ("Events rejected under OLD only", "旧でだけ拒否されたイベント"),
    "diff.change.moved": ("moved", "時期が変わる"), "diff.change.added": ("added", "増える"),
    "diff.change.dropped": ("dropped", "なくなる"),
    "diff.title": ("loyalty diff: {program} v{old} → v{new}", "loyalty diff: {program} v{old} → v{new}（変更の影響）"),
    "diff.h1": ("What the change does: {program}", "変更の影響: {program}"),
    "diff.sub": ("OLD {old_path} (v{old_version}) → NEW {new_path} (v{new_version}); the same {events} events replayed "
                 "under both, as of {as_of}. {changed} of {members} members change.",
                 "旧 {old_path}（v{old_version}）→ 新 {new_path}（v{new_version}）。同じ {events} 件のイベントを両方で再生、"
                 "{as_of} 時点。会員 {members} 人中 {changed} 人の数字が変わります。"),
    "diff.points_granted": ("points granted", "付与ポイント"), "diff.points_used": ("points used", "使用ポイント"),
    "diff.points_expired": ("points expired", "失効ポイント"), "diff.points_voided": ("points voided", "取消ポイント"),
    "diff.points_outstanding": ("points outstanding", "未使用ポイント"),
    "diff.stage_old": ("stage OLD", "ステージ（旧）"), "diff.date_old": ("date OLD", "日付（旧）"),
    "diff.stage_new": ("stage NEW", "ステージ（新）"), "diff.date_new": ("date NEW", "日付（新）"),
    "diff.effect": ("effect", "対応事項"), "diff.detail": ("detail", "詳細"), "diff.order": ("order", "注文"),
    "diff.placed": ("placed", "注文日"),
    "diff.asked": ("asked", "申し込み"), "diff.allowed": ("allowed", "認めた分"),
    "diff.event": ("event", "イベント"), "diff.reason": ("reason", "理由"),
    "diff.distribution": ("Distribution of the change per member", "会員ごとの変化の分布"),
    "diff.hist_points": ("Change in points granted per member (NEW − OLD)", "会員ごとの付与ポイントの変化（新 − 旧）"),
    "diff.hist_yen": ("Change in cost per member, yen (NEW − OLD)", "会員ごとの費用の変化（円、新 − 旧）"),
    "diff.unit_points": ("points", "ポイント"), "diff.unit_yen": ("yen", "円"),
    "diff.bar_title": ("{label} {unit}: {n} member(s)", "{label} {unit}: {n} 人"),
    "diff.axis_members": ("members", "会員数"),
    "diff.cost_by_month": ("Cost by month", "月別の費用"),
    "diff.months_title": ("Cost in yen of the points granted each month (not voided or expired)",
                          "毎月付与したポイントの費用（円、取消・失効の分を除く）"),
    "diff.cost_note": ("Cost = points granted, less voided and expired points, × the yen value of a point in the program "
                       "version that granted them: what the shop has paid out as discounts or still owes.",
                       "費用 = 付与ポイント − 取消・失効ポイント、× 付与したプログラムのバージョンでの 1 ポイントの円換算額。"
                       "ショップが値引きとして支払った額、またはこれから負う額です。"),
    "diff.tier_changes": ("Tier changes", "ランクの変化"), "diff.from_to": ("from → to", "変更前 → 変更後"),
    "diff.members_count": ("members", "会員数"),
    "diff.made_by": ("Made by {command} on {at}.", "{command} で作成（{at}）。"),
    "diff.csv_head": ("section,member,figure,old,new,change,rule,written_at", "区分,会員,項目,旧,新,差,ルール,書かれている場所"),
    "diff.metric.granted": ("granted", "付与"), "diff.metric.used": ("used", "使用"),
    "diff.metric.expired": ("expired", "失効"), "diff.metric.void": ("voided", "取消"),
    "diff.metric.outstanding": ("outstanding", "未使用"), "diff.metric.cost_yen": ("cost (yen)", "費用（円）"),
    "diff.metric.liability_yen": ("liability (yen)", "負債（円）"),
    "diff.metric.items_yen": ("items paid (yen)", "商品の支払額（円）"),
    "diff.metric.fees_yen": ("fees paid (yen)", "手数料の支払額（円）"),
    "diff.metric.points_yen": ("points used (yen)", "ポイント利用額（円）"),
    "diff.metric.to_pay_yen": ("customers paid (yen)", "お客様の支払額（円）"),
    "diff.metric.orders": ("orders placed", "注文数"), "diff.metric.clamped": ("redemptions clamped", "上限で減らした利用"),
    "diff.metric.clamped_units": ("units clamped away", "上限で減らしたポイント数"),
    "diff.metric.max_lowered": ("max lowered", "「最大」で減った利用"),
    "diff.metric.max_lowered_units": ("max lowered units", "「最大」で減ったポイント数"),
    "diff.metric.max_raised": ("max raised", "「最大」で増えた利用"),
    "diff.metric.max_raised_units": ("max raised units", "「最大」で増えたポイント数"),
    # serve: the lines it says before it starts
    "serve.no_token": ("LOYALTY_API_TOKEN is not set: the service does not start without a token "
                       "(e.g. export LOYALTY_API_TOKEN=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\")",
                       "LOYALTY_API_TOKEN が設定されていません。トークンなしではサービスを起動しません"
                       "（例: export LOYALTY_API_TOKEN=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')\"）"),
    "serve.bad_token": ("LOYALTY_API_TOKEN must be at least {n} characters, without spaces",
                        "LOYALTY_API_TOKEN は空白を含まない {n} 文字以上にしてください"),
    "serve.needs_extra": ("the service needs its extra ({name} is missing): pip install 'loyalty-engine[service]'",
                          "サービスには追加パッケージが必要です（{name} がありません）: pip install 'loyalty-engine[service]'"),
    "serve.workers": ("--workers {n}: a SQLite or :memory: ledger has one writer, so one worker; use a PostgreSQL --db for more",
                      "--workers {n}: SQLite や :memory: の台帳に書き込めるのは 1 つだけなので、ワーカーも 1 つです。"
                      "増やすには PostgreSQL の --db を使ってください"),
    "serve.bad_timeout": ("LOYALTY_BODY_TIMEOUT={value}: seconds, above 0 and at most 3600",
                          "LOYALTY_BODY_TIMEOUT={value}: 0 より大きく 3600 以下の秒数にしてください"),
    # words shared by the reports
    "unit.points": ("points", "ポイント"), "unit.credits": ("credits", "クレジット"),
}
CATALOGUES = CATALOGUES + (COMMAND_WORDS,)


def word(code: str, lang: str = "en", **args: Any) -> str:
    """A command's label or sentence (COMMAND_WORDS) in ``lang``, filled in with ``args``."""
    en, ja = COMMAND_WORDS[code]
    return (ja if lang == "ja" else en).format(**args)


def unit_word(unit: str, lang: str = "en") -> str:
    """A program's unit ('points', 'credits') as the reader says it; any other unit as written."""
    return word(f"unit.{unit}", lang) if lang == "ja" and f"unit.{unit}" in COMMAND_WORDS else unit

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


def refusal(code: str, field: Optional[str] = None, rule: Optional[str] = None, **args: Any) -> Refusal:
    """A refusal by code that is held, not raised (a quote's error): its English text is the code's."""
    return Refusal(message=render(code, args), code=code, args=args, field=field, rule=rule)


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
