"""Messages in the marketer's language: English (the default) and Japanese.

Every problem and refusal carries a code and its arguments; its texts are the catalogue's
(engine/format/messages.py), looked up by code. Positions (``FILE:LINE:COL``), names from the file and
numbers are never translated.

Language: ``--lang`` wins; otherwise the locale (``LC_ALL``, then ``LC_MESSAGES``, then ``LANG``;
``ja_JP.UTF-8`` and the like mean Japanese); otherwise English.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

from engine.format import messages

LANGS = ("en", "ja")

_TEXT: dict[str, dict[str, str]] = {
    "valid_summary": {"en": "{n} program file(s) valid", "ja": "{n} 個のプログラムファイルに問題はありません"},
    "no_files": {"en": "no program files found", "ja": "プログラムファイルが見つかりません"},
}


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


def translate(problem_or_code, lang: str = "en", **args) -> str:
    """A problem's message, or a code's text filled in with ``args``, in ``lang``."""
    if isinstance(problem_or_code, str):
        # a text that is no code (a store's own words, an operating-system error) stays as written
        return messages.render(problem_or_code, args, lang) if messages.is_code(problem_or_code) else problem_or_code
    return messages.problem_text(problem_or_code, lang)[0]


def translate_hint(problem, lang: str = "en") -> Optional[str]:
    return messages.problem_text(problem, lang)[1]


def is_translated(problem) -> bool:
    """True when the problem has a code, so a Japanese text (tests: every loader problem has one)."""
    return problem.code is not None and messages.problem_text(problem, "ja")[0] != ""


def format_problem(problem, lang: str = "en") -> str:
    """``FILE:LINE:COL: message (hint)``, the message and hint in ``lang``; the position never changes."""
    message, hint = messages.problem_text(problem, lang)
    text = f"{problem.pos}: {message}"
    return f"{text} ({hint})" if hint else text


def text(key: str, lang: str = "en", **values) -> str:
    """A fixed user-interface line (summaries) in ``lang``."""
    entry = _TEXT[key]
    return entry.get(lang, entry["en"]).format(**values)
