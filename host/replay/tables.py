"""The replay's tables as files: CSV, or Parquet when the file name ends in ``.parquet``.

CSV for a spreadsheet or ``grep``; Parquet keeps the column types (prices and cycles stay
64-bit integers) and loads straight into pandas, polars or DuckDB. Both hold the same rows and
columns.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["write_table"]


def write_table(path: str | Path, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Write ``rows`` (sequences in ``columns`` order) to ``path`` with a header; returns the
    number of rows."""
    path = Path(path)
    rows = list(rows)
    if path.suffix == ".parquet":
        import pandas as pd

        frame = pd.DataFrame(rows, columns=list(columns))
        frame.to_parquet(path, index=False)
    else:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(rows)
    return len(rows)
