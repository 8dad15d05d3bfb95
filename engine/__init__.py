"""Declarative loyalty programs: versioned YAML in, a small fast engine that evaluates them."""
from __future__ import annotations

from importlib import import_module

# Imported on first use, so `loyalty validate` does not pay for the engine's runtime imports.
_EXPORTS = {
    "Engine": "shell.api", "quote": "shell.api", "apply": "core.apply", "Outcome": "core.apply",
    "EventRejected": "model.errors", "ProgramError": "model.errors", "Refusal": "model.errors",
    "load_program": "format.loader", "parse_program": "format.loader",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
