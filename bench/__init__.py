"""Benchmarks: ``python -m bench [--quick] [--json]`` (bench/__main__.py). Writes BENCHMARKS.md.

Modules: workloads (deterministic synthetic events and carts per program), suite (the
measurements), handwritten (the &est floor in plain Python), zen_peer + andest.jdm.json (the same
rules on GoRules zen-engine), history (a member with N lots), scale (one replay in a child process,
for its peak memory), report (Markdown), profile (``python -m bench.profile replay|quote``).
pg_replay.py and service_load.py are stand-alone scripts (PostgreSQL replay, HTTP load).
"""
