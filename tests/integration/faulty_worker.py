"""``xwatch worker`` with a fault planted on one marked message (tests only).

``python tests/integration/faulty_worker.py crash worker ...``: decoding a batch that holds
a value containing ``KILLS-THE-WORKER`` ends the process with ``os._exit(99)`` before any
Python handler runs -- a crash no handler sees (the kernel killing the process, a fault in
native code).

``python tests/integration/faulty_worker.py hang worker ...``: decoding a batch that holds
``HANGS-THE-WORKER`` blocks the engine thread forever while the rest of the process (Faust,
the web server) goes on -- a deadlock, a call that never returns.
"""

from __future__ import annotations

import os
import sys
import threading

MARKS = {"crash": b"KILLS-THE-WORKER", "hang": b"HANGS-THE-WORKER"}


def main() -> None:
    fault = sys.argv.pop(1)
    mark = MARKS[fault]
    from streams import columns

    decode = columns.ColumnBuilder.decode

    def faulty_decode(self: columns.ColumnBuilder, values: list[bytes | None]) -> columns.DecodedBatch:
        if any(v is not None and mark in v for v in values):
            if fault == "crash":
                os._exit(99)
            threading.Event().wait()
        return decode(self, values)

    columns.ColumnBuilder.decode = faulty_decode  # type: ignore[method-assign]
    from streams.cli import main as cli

    sys.argv = ["xwatch", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
