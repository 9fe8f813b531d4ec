"""The spend log export: every ledger record of a range, with its cost lines, as JSON lines, CSV or
Parquet (``pip install 'switchyard[parquet]'``: pyarrow; one row group per chunk read).

Records are read a chunk at a time (``LedgerStore.records``) and written as they come, so memory
stays bounded whatever the range holds. The ledger holds no prompt or answer content, so neither
does the export.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import IO, Any

import orjson

from router.ledger.schema import requests
from router.ledger.queries import UsageQuery
from router.ledger.store import LedgerStore

FORMATS = ("jsonl", "csv", "parquet")
JSON_COLUMNS = ("decision", "attempts", "tags", "lines")  # nested values, written as JSON text in CSV and Parquet
CSV_COLUMNS = [c.name for c in requests.columns] + ["lines"]  # lines: the record's cost lines as JSON


async def export_requests(store: LedgerStore, start: float, end: float, out: Path, fmt: str) -> dict[str, float]:
    """Write the records in [start, end) to ``out``; returns the count and the summed charge and cost."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    totals = {"records": 0.0, "charge_usd": 0.0, "cost_usd": 0.0, "unpriced": 0.0}
    charges: list[float] = []
    costs: list[float] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb" if fmt == "parquet" else "w", newline=None if fmt == "parquet" else "") as fh:
        writer: Any = _Parquet(fh) if fmt == "parquet" else _Writer(fh, fmt)
        async for chunk in store.records(UsageQuery(start=start, end=end)):
            if fmt == "parquet":
                writer.write_chunk(chunk)
            for rec in chunk:
                if fmt != "parquet":
                    writer.write(rec)
                totals["records"] += 1
                if rec["cost_usd"] is None:
                    totals["unpriced"] += 1
                else:
                    costs.append(rec["cost_usd"])
                if rec["charge_usd"] is not None:
                    charges.append(rec["charge_usd"])
            # partial sums per chunk keep the lists short and the total exact enough (fsum per chunk)
            totals["charge_usd"] += math.fsum(charges)
            totals["cost_usd"] += math.fsum(costs)
            charges.clear()
            costs.clear()
        if fmt == "parquet":
            writer.close()
    return totals


class _Writer:
    def __init__(self, fh: IO[str], fmt: str):
        self.fh, self.fmt = fh, fmt
        if fmt == "csv":
            self.csv = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            self.csv.writeheader()

    def write(self, rec: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.fh.write(orjson.dumps(rec).decode() + "\n")
            return
        row = dict(rec)
        for key in JSON_COLUMNS:
            if row.get(key) is not None:
                row[key] = orjson.dumps(row[key]).decode()
        self.csv.writerow(row)


class _Parquet:
    """Parquet with the ledger's own column types (nested values as JSON text), a row group per chunk."""

    def __init__(self, fh: IO[bytes]):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError("the parquet format needs pyarrow: pip install 'switchyard[parquet]'") from None
        from sqlalchemy import Boolean, Float, Integer

        def kind(col: Any) -> Any:
            t = col.type
            return (
                pa.bool_()
                if isinstance(t, Boolean)
                else pa.int64()
                if isinstance(t, Integer)
                else pa.float64()
                if isinstance(t, Float)
                else pa.string()
            )

        self.pa = pa
        self.schema = pa.schema([(c.name, kind(c)) for c in requests.columns] + [("lines", pa.string())])
        self.writer = pq.ParquetWriter(fh, self.schema, compression="zstd")

    def write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        cols: dict[str, list[Any]] = {f.name: [] for f in self.schema}
        for rec in chunk:
            for name, values in cols.items():
                v = rec.get(name)
                if name in JSON_COLUMNS and v is not None:
                    v = orjson.dumps(v).decode()
                values.append(v)
        self.writer.write_table(self.pa.Table.from_pydict(cols, schema=self.schema))

    def close(self) -> None:
        self.writer.close()
