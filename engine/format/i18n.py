"""Messages in the marketer's language: English (the default) and Japanese.

The loader writes its problems in English, as plain text with the names and numbers filled in.
This catalog turns them into Japanese by pattern: each entry is an English template, written as a
regular expression whose named groups catch the filled-in parts, and its Japanese counterpart.
A message the catalog does not know stays in English (so a new loader message never breaks
`validate`, it is only untranslated until a line is added here). Positions (``FILE:LINE:COL``),
names from the file and numbers are never translated.

Language: ``--lang`` wins; otherwise the locale (``LC_ALL``, then ``LC_MESSAGES``, then ``LANG``;
``ja_JP.UTF-8`` and the like mean Japanese); otherwise English.
"""
from __future__ import annotations

import os
import re
from typing import Mapping, Optional

LANGS = ("en", "ja")

_Q = r"'[^']*'"                 # a quoted name as the loader writes it: 'silvr'
_ANY = r".+?"

# (English pattern, Japanese template). Patterns are matched against the whole message; the first
# that matches wins. A message "FIELD: rest" (a schema path or an expression's place) is translated
# as FIELD, then the rest.
_MESSAGES: list[tuple[str, str]] = [
    # yamlpos: reading the file
    (r"the file is empty", "ファイルが空です"),
    (r"the file is not UTF-8 text", "ファイルが UTF-8 のテキストではありません（文字化けしたバイトがあります）"),
    (r"YAML syntax: (?P<detail>.*)", "YAML の書き方の誤り（インデントや記号を確認してください）: {detail}"),
    (r"YAML nesting too deep", "YAML の入れ子が深すぎます"),
    (r"YAML: (?P<detail>.*)", "YAML を読めません: {detail}"),
    (r"document expands to more than (?P<n>\d+) values \(alias bomb\?\)",
     "文書を展開すると {n} 個を超える値になります（エイリアスの使いすぎ？）"),
    (r"merge keys \('<<'\) are not supported; write the keys out",
     "マージキー（'<<'）は使えません。キーを一つずつ書いてください"),
    (r"a key must be a plain word", "キーは単純な語でなければなりません"),
    (rf"duplicate key (?P<key>{_Q}) \(an earlier one is at line (?P<line>\d+)\)",
     "キー {key} が重複しています（先に {line} 行目で書かれています）"),
    (r"cannot read value: (?P<detail>.*)", "値を読めません: {detail}"),
    (r"the file holds a character YAML does not allow \((?P<c>#x[0-9A-F]+)\)",
     "YAML で使えない文字（{c}）がファイルに含まれています"),
    (r"cannot read file: (?P<detail>.*)", "ファイルを読めません: {detail}"),
    # loader: the whole file
    (r"a program file is a mapping \(program:, name:, versions: \.\.\.\)",
     "プログラムファイルはマッピング（program:、name:、versions: …）でなければなりません"),
    (rf"unknown time zone (?P<tz>{_Q})", "不明なタイムゾーン {tz}"),
    (rf"unknown key (?P<key>{_Q})", "不明なキー {key}"),
    # loader: semantics
    (rf"unknown rule id (?P<rule>{_Q}): declare it under 'rules'",
     "不明なルールID {rule}: 'rules' の下で宣言してください"),
    (rf"tier (?P<tier>{_Q}) is declared twice", "ティア {tier} が二度宣言されています"),
    (rf"tier (?P<tier>{_Q}) needs a higher min than (?P<prev>{_Q}) \((?P<min>\d+)\)",
     "ティア {tier} の min は {prev}（{min}）より大きくしてください"),
    (r"the first tier must start at min 0 \(every member has a tier\)",
     "最初のティアは min 0 から始めてください（すべての会員がいずれかのティアに入ります）"),
    (r"'until' \((?P<until>[^)]*)\) is before 'from' \((?P<from_>[^)]*)\)",
     "'until'（{until}）が 'from'（{from_}）より前です"),
    (r"rates by tier need a 'tiers' section", "ティア別の率には 'tiers' セクションが必要です"),
    (rf"unknown tier (?P<tier>{_Q})", "不明なティア {tier}"),
    (rf"no tier (?P<x>{_Q}) in this program", "このプログラムにティア {x} はありません"),
    (rf"no course (?P<x>{_Q}) in this program", "このプログラムにコース {x} はありません"),
    (rf"no payment method (?P<x>{_Q}) in this program", "このプログラムに支払方法 {x} はありません"),
    (rf"no tag (?P<x>{_Q}) in this program", "このプログラムにタグ {x} はありません（tags に宣言されていません）"),
    (rf"no attribute (?P<x>{_Q}) in this program", "このプログラムに会員属性 {x} はありません（attributes に宣言されていません）"),
    (rf"no rate for tier (?P<tier>{_Q})", "ティア {tier} の率がありません"),
    (rf"(?P<s>{_Q}) is written whole in this version and changed under 'changes': write one of them",
     "{s} がこのバージョンで丸ごと書かれ、'changes' でも変えられています。どちらか一方にしてください"),
    (rf"'changes' cannot change (?P<s>{_Q}): the version before has no (?P<s2>{_Q})",
     "'changes' で {s} は変えられません。前のバージョンに {s2} がありません"),
    # loyalty diff
    (rf"OLD is program (?P<a>{_Q}) and NEW is program (?P<b>{_Q}): two different programs, not two versions of one",
     "OLD はプログラム {a}、NEW はプログラム {b} です。同じプログラムの 2 つの版ではなく、別々のプログラムです"),
    (r"(?P<f>.+): no such events file", "{f}: イベントファイルがありません"),
    (r"a campaign row \(multiply/add\) needs a row below it that gives the rate",
     "キャンペーン行（multiply/add）の下に、率を決める行が必要です"),
    (r"this rate row can never match: row (?P<n>\d+) \((?P<rule>[^,]+), line (?P<line>\d+)\) above it takes every line",
     "この率の行には決して当てはまりません: 上の {n} 行目（{rule}、{line} 行）がすべての明細を取ります"),
    (r"this rate row can never match: row (?P<n>\d+) \((?P<rule>[^,]+), line (?P<line>\d+)\) above it has the same condition",
     "この率の行には決して当てはまりません: 上の {n} 行目（{rule}、{line} 行）が同じ条件です"),
    (r"every version needs an 'expiry' section \(kind: none if points never expire\)",
     "各バージョンに 'expiry' セクションが必要です（ポイントが失効しないなら kind: none）"),
    (rf"expiry kind (?P<kind>{_Q}) needs a 'period'", "失効の種類 {kind} には 'period' が必要です"),
    (r"version (?P<n>\d+) must be higher than (?P<m>\d+)", "version {n} は {m} より大きくしてください"),
    (r"effective_from (?P<d>\S+) overlaps version (?P<n>\d+) \(from (?P<d2>[^)]*)\): "
     r"each version must start later than the one before",
     "effective_from {d} がバージョン {n}（{d2} から）と重なっています。各バージョンは前のバージョンより後に始めてください"),
    # expressions (engine/format/expr.py), after their "when: " prefix
    (r"expected text, got (?P<t>\w+)", "式はテキストで書いてください（{t} が書かれています）"),
    (r"longer than (?P<n>\d+) characters", "{n} 文字を超えています"),
    (r"syntax error in (?P<src>.*): (?P<detail>[^:]*)", "{src} に構文エラーがあります: {detail}"),
    (r"cannot parse (?P<src>.*)", "{src} を解析できません"),
    (rf"(?P<x>{_Q}) is not allowed in program expressions", "プログラムの式では {x} は使えません"),
    (rf"name (?P<x>{_Q}) is not allowed", "名前 {x} は使えません"),
    (rf"unknown name (?P<x>{_Q}); write (?P<y>True|False|None)", "不明な名前 {x}。{y} と書いてください"),
    (rf"unknown name (?P<x>{_Q}); did you mean (?P<y>{_Q})\?", "不明な名前 {x}。{y} のことですか？"),
    (rf"unknown name (?P<x>{_Q}); known names: (?P<names>.*)", "不明な名前 {x}。使える名前: {names}"),
    (r"only min, max, abs, floor, ceil and len can be called",
     "呼び出せる関数は min、max、abs、floor、ceil、len だけです"),
    (r"text constant longer than (?P<n>\d+) characters", "文字列の定数が {n} 文字を超えています"),
    (r"only numbers, text, True/False and None are allowed as constants",
     "定数に使えるのは数値、テキスト、True/False、None だけです"),
    (r"(?P<f>\w+)\(\) takes (?P<n>\d+(?: to \d+)?) argument\(s\), got (?P<m>\d+)",
     "{f}() の引数は {n} 個です（{m} 個書かれています）"),
    (r"(?P<part>.+) always fails: (?P<detail>.*)", "{part} はどの入力でも失敗します: {detail}"),
    # numbers (the loader, before the schema)
    (r"must be a finite number \(got (?P<v>[^)]*)\)", "有限の数で書いてください（{v} が書かれています）"),
    (r"must be a whole number \(got (?P<v>[^)]*)\)", "整数で書いてください（{v} が書かれています）"),
    # JSON Schema (jsonschema's wording, and the loader's rewording of some of it)
    (r"must not be negative \(got (?P<v>[^)]*)\)", "負の数は使えません（{v} が書かれています）"),
    (r"(?P<v>.+?) is not one of (?P<choices>.*)", "{v} は使えません。使える値: {choices}"),
    (rf"(?P<prop>{_Q}) is a required property", "必須のキー {prop} がありません"),
    (r"(?P<v>.+?) is not of type (?P<types>.*)", "{v} の型が違います（{types} が必要です）"),
    (r"(?P<v>.+?) is greater than the maximum of (?P<max>\S+)", "{v} は最大値 {max} を超えています"),
    (r"(?P<v>.+?) is greater than or equal to the maximum of (?P<max>\S+)", "{v} は {max} 未満にしてください"),
    (r"(?P<v>.+?) is less than the minimum of (?P<min>\S+)", "{v} は最小値 {min} より小さいです"),
    (r"(?P<v>.+?) is less than or equal to the minimum of (?P<min>\S+)", "{v} は {min} より大きくしてください"),
    # loader: the accounting section; loyalty close / liability (engine/shell/commands/ledger.py)
    (r"(?P<v>\S+) is not a day of the year \(MM-DD\)", "{v} は年の中の日付（MM-DD）ではありません"),
    (r"(?P<opt>--from|--to): not a month \(YYYY-MM\) nor a date \(YYYY-MM-DD\): (?P<v>.*)",
     "{opt}: 月（YYYY-MM）でも日付（YYYY-MM-DD）でもありません: {v}"),
    (r"--to (?P<to>\S+) is before --from (?P<from_>\S+)", "--to {to} が --from {from_} より前です"),
    (r"--as-of: not an ISO 8601 time with offset, nor a date: (?P<v>.*)",
     "--as-of: オフセット付きの ISO 8601 の時刻でも日付でもありません: {v}"),
    (r"loyalty (?P<cmd>close|liability): no ledger at (?P<path>.*)",
     "loyalty {cmd}: {path} に台帳がありません"),
    (r"loyalty liability: the outstanding units at (?P<at>\S+) cannot be rebuilt: (?P<why>.*); close the ledger "
     r"through that month's end first \(loyalty close\)",
     "loyalty liability: {at} 時点の未使用残高を再現できません: {why}。先にその月末まで締めてください（loyalty close）"),
    (rf"(?P<v>.+?) is not a (?P<fmt>{_Q})", "{v} は {fmt} の形式ではありません"),
    (rf"(?P<v>.+?) does not match (?P<pattern>{_Q})", "{v} は書式 {pattern} に合いません"),
    (r"(?P<v>.+?) is too short", "{v} は短すぎます（要素が足りません）"),
    (r"(?P<v>.+?) is too long", "{v} は長すぎます"),
    (r"(?P<v>.+?) should be non-empty", "{v} を空にはできません"),
    (r"(?P<v>.+?) does not have enough properties", "{v} にキーが足りません"),
    (r"(?P<v>.+?) is not valid under any of the given schemas", "{v} はどの書き方にも合いません"),
    (r"(?P<v>.+?) is valid under each of (?P<s>.*)", "{v} が複数の書き方に同時に合ってしまいます"),
    (r"(?P<v>.+?) was expected", "{v} でなければなりません"),
    (r"(?P<v>.+?) has non-unique elements", "{v} に同じ要素が重複しています"),
    (r"(?P<v>.+?) does not match any of the regexes: (?P<r>.*)", "{v} はどの書式（{r}）にも合いません"),
]

_HINTS: list[tuple[str, str]] = [
    (rf"did you mean (?P<x>{_Q})\?", "{x} のことですか？"),
    (r"expected one of: (?P<names>.*)", "使えるキー: {names}"),
    (r"tiers are: (?P<names>.*)", "ティアは {names} です"),
    (r"courses are: (?P<names>.*)", "コースは {names} です"),
    (r"payment methods are: (?P<names>.*)", "支払方法は {names} です"),
    (r"tags are: (?P<names>.*)", "タグは {names} です"),
    (r"attributes are: (?P<names>.*)", "会員属性は {names} です"),
    (r"the program has no tiers", "このプログラムにはティアがありません"),
    (r"the program has no tags", "このプログラムにはタグが宣言されていません"),
    (r"write (?P<n>-?\d+)", "{n} と書いてください"),
    (r"an IANA zone name such as Asia/Tokyo", "Asia/Tokyo のような IANA のタイムゾーン名を書いてください"),
    (r"put it above the rows whose rates it multiplies", "倍にする行より上に置いてください"),
    (r"the first matching row wins: move this row above it", "最初に当てはまった行が使われます。この行をその上に移してください"),
    (r"the first matching row wins: change or remove one of them",
     "最初に当てはまった行が使われます。どちらかを変えるか削除してください"),
]

_TEXT: dict[str, dict[str, str]] = {
    "valid_summary": {"en": "{n} program file(s) valid", "ja": "{n} 個のプログラムファイルに問題はありません"},
    "no_files": {"en": "no program files found", "ja": "プログラムファイルが見つかりません"},
    "(top)": {"en": "(top)", "ja": "（最上位）"},
}

_compiled: dict[str, list] = {}   # compiled on first use, so English runs pay nothing for the catalog


def _catalog(name: str) -> list:
    if name not in _compiled:
        source = _MESSAGES if name == "messages" else _HINTS
        _compiled[name] = [(re.compile(p, re.S), t) for p, t in source]
    return _compiled[name]

# "versions.0.expiry.kind: rest", "when: rest", "(top): rest"
_PREFIX = re.compile(r"(?P<field>\(top\)|[A-Za-z_][\w]*(?:\.[\w-]+)*): (?P<rest>.*)", re.S)


def lang_from_env(environ: Optional[Mapping[str, str]] = None) -> str:
    """The language the locale asks for: 'ja' for ja / ja_JP.*, else 'en'."""
    env = os.environ if environ is None else environ
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


def resolve_lang(option: Optional[str], environ: Optional[Mapping[str, str]] = None) -> str:
    if option:
        option = option.lower()
        if option.startswith("ja"):
            return "ja"
        if option.startswith("en"):
            return "en"
        raise ValueError(f"unknown language {option!r}: use one of {', '.join(LANGS)}")
    return lang_from_env(environ)


def _apply(catalog, text: str) -> Optional[str]:
    for pattern, template in catalog:
        m = pattern.fullmatch(text)
        if m:
            return template.format(**m.groupdict())
    return None


def translate(message: str, lang: str = "en") -> str:
    """The message in ``lang``; unknown messages come back unchanged (in English)."""
    if lang != "ja" or not message:
        return message
    m = _PREFIX.fullmatch(message)
    if m:  # "FIELD: rest": the field as written, the rest translated (when the catalog knows it)
        rest = translate(m["rest"], lang)
        if rest != m["rest"]:
            field = _TEXT["(top)"]["ja"] if m["field"] == "(top)" else m["field"]
            return f"{field}: {rest}"
    found = _apply(_catalog("messages"), message)
    return found if found is not None else message


def translate_hint(hint: Optional[str], lang: str = "en") -> Optional[str]:
    if hint is None or lang != "ja":
        return hint
    found = _apply(_catalog("hints"), hint)
    return found if found is not None else hint


def is_translated(message: str) -> bool:
    """True when the catalog knows the message (for tests: every loader message has a Japanese line)."""
    return translate(message, "ja") != message


def format_problem(problem, lang: str = "en") -> str:
    """``FILE:LINE:COL: message (hint)``, the message and hint in ``lang``; the position never changes."""
    if lang != "ja":
        return str(problem)
    text = f"{problem.pos}: {translate(problem.message, lang)}"
    hint = translate_hint(problem.hint, lang)
    return f"{text} ({hint})" if hint else text


def text(key: str, lang: str = "en", **values) -> str:
    """A fixed user-interface line (summaries) in ``lang``."""
    entry = _TEXT[key]
    return entry.get(lang, entry["en"]).format(**values)
