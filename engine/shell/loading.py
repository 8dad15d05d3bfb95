"""Loading a program for a command: problems printed one a line (FILE:LINE:COL: message), exit 1."""
from __future__ import annotations

import sys

import click

from engine.format.loader import load_program
from engine.format.program import Program
from engine.model.errors import ProgramError


def load_or_exit(path: str) -> Program:
    try:
        return load_program(path)
    except ProgramError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
