"""Run `elshi ingest CONNECTOR FILE [-o KEY=VALUE ...]` with this process's memory capped.

    python capped_ingest.py CONNECTOR FILE [ARG ...]

Once elshi is loaded, the address space is capped 1 GiB above the process's size: a parser that
blows up on a deeply nested document raises MemoryError here instead of exhausting the machine.
The cap is set in this child process only. Set in the test process, it would also starve the
threads that earlier tests left there, and a thread that fails to allocate while holding a lock
hangs the whole run.
"""

from __future__ import annotations

import resource
import sys

from elshi.cli.root import app

ROOM = 1 << 30


def cap_memory() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as fh:
        size = int(fh.read().split()[0]) * resource.getpagesize()
    cap = size + ROOM
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def main(argv: list[str]) -> None:
    cap_memory()
    app(["ingest", *argv, "--no-progress"])


if __name__ == "__main__":
    main(sys.argv[1:])
