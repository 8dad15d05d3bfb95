"""Declarative loyalty programs: versioned YAML in, a small fast engine that evaluates them."""
from __future__ import annotations

from importlib import import_module

# Imported on first use, so `loyalty validate` does not pay for the engine's runtime imports.
_EXPORTS = {
    "Engine": "api", "quote": "api", "apply": "core", "Outcome": "core",
    "EventRejected": "errors", "ProgramError": "errors", "load_program": "loader", "parse_program": "loader",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
