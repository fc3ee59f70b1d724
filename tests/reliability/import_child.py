"""Run `elshi ingest tabular FILE` as a large (bulk) import in this process, for fault tests.

    python import_child.py FILE [STOP_AFTER MARKER]

Any file counts as large here, so SQLite takes the bulk path (indexes dropped, near duplicates
decided at the end). With STOP_AFTER, the import stops for good once that many batches are
committed, after touching MARKER: the test then kills this process at a known point.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from elshi.cli.root import app
from elshi.listen import flows, writer


def main(argv: list[str]) -> None:
    path = argv[0]
    flows.BULK_MIN_BYTES = 1
    if len(argv) == 3:
        stop_after, marker = int(argv[1]), Path(argv[2])
        real = writer._Writer.write
        done = [0]

        def write(self, items, report):  # type: ignore[no-untyped-def]
            real(self, items, report)
            done[0] += 1
            if done[0] == stop_after:
                marker.write_text(str(done[0]))
                time.sleep(3600)  # the test kills us here

        writer._Writer.write = write  # type: ignore[method-assign]
    app(["ingest", "tabular", path, "--option", "profile=generic", "--no-progress"])


if __name__ == "__main__":
    main(sys.argv[1:])
