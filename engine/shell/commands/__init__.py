"""Extra `loyalty` subcommands, one module each (see engine.shell.cli._register_commands)."""
from __future__ import annotations

from typing import Optional

import click

# every command's --lang: the language of its output and its error lines
lang_option = click.option("--lang", type=click.Choice(["en", "ja"]), default=None,
                           help="Language of the output (default: from the locale, LANG=ja_JP.UTF-8 gives ja; else en)")


def language(option: Optional[str]) -> str:
    """--lang if given, else the locale's (LC_ALL, LC_MESSAGES, LANG): 'en' or 'ja'."""
    from engine.format.i18n import resolve_lang

    return resolve_lang(option)
