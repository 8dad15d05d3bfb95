"""Progress display for long replays: a bar on a terminal, nothing at all otherwise.

``Runner.run(lines, progress=callback)`` calls ``callback(n)`` after each line. ``replay_progress``
gives such a callback: on a TTY (standard error) it drives a ``rich`` progress bar, redrawn at most
a few times a second; when standard error is not a terminal (CI, a pipe, a log file), when
``rich`` is not installed, or when the replay is short, it gives ``None``, which the runner treats
as "no progress" (no cost per event at all).

    with replay_progress(count_lines(events)) as progress:
        result = Runner(program, store).run(lines, progress=progress)
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, TextIO

# A replay shorter than this finishes before a bar would be worth drawing.
MIN_EVENTS = 5_000
# The callback updates the bar every STEP lines (a rich update costs a few microseconds).
STEP = 256


def count_lines(path: str, chunk: int = 1 << 20) -> Optional[int]:
    """Lines in a file (fast: counts newline bytes), or None for standard input / an unreadable file."""
    if path == "-":
        return None
    n = 0
    last = b"\n"
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                n += block.count(b"\n")
                last = block[-1:]
    except OSError:
        return None
    return n + (0 if last == b"\n" else 1)


def is_tty(stream: Optional[TextIO] = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def replay_progress(total: Optional[int] = None, description: str = "applying events",
                    stream: Optional[TextIO] = None, force: bool = False,
                    min_events: int = MIN_EVENTS) -> Iterator[Optional[Callable[[int], None]]]:
    """A progress callback for ``Runner.run`` (or None: silent).

    ``total``: the number of lines, if known (a bar with a percentage and time left); else a
    spinner with a count. ``force`` shows the bar even off a terminal (for tests and demos).
    """
    stream = stream if stream is not None else sys.stderr
    wanted = force or (is_tty(stream) and (total is None or total >= min_events))
    if not wanted:
        yield None
        return
    try:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
    except ImportError:  # the 'tools' extra is not installed: stay silent
        yield None
        return
    console = Console(file=stream, force_terminal=force or None)
    columns: tuple[ProgressColumn, ...]
    if total:
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("left"),
                   TimeRemainingColumn())
    else:
        columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=not force, refresh_per_second=8) as bar:
        task = bar.add_task(description, total=total or None)
        seen = 0

        def advance(n: int) -> None:
            nonlocal seen
            if n - seen >= STEP:
                bar.update(task, completed=n)
                seen = n

        try:
            yield advance
        finally:
            bar.update(task, completed=max(seen, total or seen))
