"""Declarative loyalty programs: versioned YAML in, a small fast engine that evaluates them."""
from .api import Engine, quote
from .core import Outcome, apply
from .errors import EventRejected, ProgramError
from .loader import load_program, parse_program

__all__ = ["Engine", "quote", "apply", "Outcome", "EventRejected", "ProgramError", "load_program", "parse_program"]
