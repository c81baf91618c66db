"""Reads the index of a znippy archive straight from the file, as docs/FORMAT.md
describes it, with pyarrow, Polars and DuckDB (through pyarrow): the footer gives the
manifest, whose rows give each sub-index stream's offset and length. Prints one line
per reader with the entries' paths it found, which must agree."""
import struct
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

data = open(sys.argv[1], "rb").read()
assert data[-16:-8] == b"ZNPYMIDX"
(manifest_offset,) = struct.unpack("<Q", data[-8:])
manifest = ipc.open_stream(data[manifest_offset : len(data) - 48]).read_all()
version = manifest.schema.metadata[b"znippy.format_version"].decode()
slices = {}
for kind, offset, length in zip(
    manifest["kind"].to_pylist(),
    manifest["offset"].to_pylist(),
    manifest["length"].to_pylist(),
):
    slices.setdefault(kind, []).append(data[offset : offset + length])

entries = pa.concat_tables(ipc.open_stream(b).read_all() for b in slices["entries"])
chunks = ipc.open_stream(slices["chunks"][0]).read_all()
paths = sorted(entries["path"].to_pylist())
print("version", version)
print("pyarrow", len(paths), chunks.num_rows, ",".join(paths))
polars_paths = sorted(
    p for b in slices["entries"] for p in pl.read_ipc_stream(b)["path"].to_list()
)
print("polars", len(polars_paths), pl.read_ipc_stream(slices["chunks"][0]).height, ",".join(polars_paths))
rows = duckdb.sql("select path from entries order by path").fetchall()
n = duckdb.sql("select count(*) from chunks").fetchall()[0][0]
print("duckdb", len(rows), n, ",".join(r[0] for r in rows))
