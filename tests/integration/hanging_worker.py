"""``xwatch worker`` whose engine loop hangs on one marked message (tests only).

Stands in for a deadlock or a call that never returns: decoding a batch that holds a value
containing ``HANGS-THE-WORKER`` blocks the engine thread forever, while the rest of the
process (Faust, the web server) goes on. Usage, from the repository root:
``python tests/integration/hanging_worker.py worker --log-level warn``.
"""

from __future__ import annotations

import os
import sys
import threading

MARK = b"HANGS-THE-WORKER"


def main() -> None:
    from streams import columns

    decode = columns.ColumnBuilder.decode

    def hanging_decode(self: columns.ColumnBuilder, values: list[bytes | None]) -> columns.DecodedBatch:
        if any(v is not None and MARK in v for v in values):
            threading.Event().wait()
        return decode(self, values)

    columns.ColumnBuilder.decode = hanging_decode  # type: ignore[method-assign]
    from streams.cli import main as cli

    sys.argv = ["xwatch", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
