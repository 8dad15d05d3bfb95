"""Loading a program for a command: problems printed one a line (FILE:LINE:COL: message), exit 1."""
from __future__ import annotations

import sys
from typing import Optional

import click

from engine.format.loader import load_program
from engine.format.program import Program
from engine.model.errors import ProgramError


def load_or_exit(path: str, lang: Optional[str] = None) -> Program:
    """The program at ``path``; else its problems in ``lang`` (default: the locale's language), exit 1."""
    try:
        return load_program(path)
    except ProgramError as exc:
        from engine.format.i18n import format_problem, resolve_lang

        lang = resolve_lang(lang)
        for problem in exc.problems:
            click.echo(format_problem(problem, lang), err=True)
        sys.exit(1)
