"""Reading an events file (JSON Lines) with bounded memory: one line at a time, each at most
MAX_LINE_BYTES. A longer line (or a file that is no text at all, such as /dev/urandom, whose
"lines" run for megabytes) is refused by its line number without being held in memory, and
reading goes on with the next line."""
from __future__ import annotations

from typing import BinaryIO, Iterator, Union

from engine.model.events import BadEvent

# The contract's bound on one event (docs/CONTRACT.md): far above any real order (an order of 1,000
# lines is about 150 KB), far below what would strain a process.
MAX_LINE_BYTES = 1 << 20
_STEP = 1 << 16


def event_lines(stream: BinaryIO, limit: int = MAX_LINE_BYTES) -> Iterator[Union[bytes, BadEvent]]:
    """The lines of ``stream``; a line over ``limit`` bytes comes as a BadEvent saying so."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n") and len(line) == limit + 1:
            yield line
            continue
        # over the limit: skip the rest of this line in small steps
        while not line.endswith(b"\n"):
            line = stream.readline(_STEP)
            if not line:
                break
        yield BadEvent(None, f"the line is longer than {limit:,} bytes (the most one event may take); "
                             f"is this a JSON Lines file of events?", code="event.line_too_long", args={"limit": limit})
