"""``xwatch worker`` whose process dies outright on one marked message (tests only).

Stands in for a crash no handler sees — the kernel killing the process, a fault in native
code: decoding a batch that holds a value containing ``KILLS-THE-WORKER`` ends the process
with ``os._exit``, before any Python handler can run. Usage, from the repository root:
``python tests/integration/crashing_worker.py worker --log-level warn``.
"""

from __future__ import annotations

import os
import sys

MARK = b"KILLS-THE-WORKER"


def main() -> None:
    from streams import columns

    decode = columns.ColumnBuilder.decode

    def dying_decode(self: columns.ColumnBuilder, values: list[bytes | None]) -> columns.DecodedBatch:
        if any(v is not None and MARK in v for v in values):
            os._exit(99)
        return decode(self, values)

    columns.ColumnBuilder.decode = dying_decode  # type: ignore[method-assign]
    from streams.cli import main as cli

    sys.argv = ["xwatch", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
