"""Checks an exported index (Arrow IPC file) against the tree it was packed from,
independently of znippy-uring: paths, kinds, sizes, mtimes, link targets, and each
file's BLAKE3 computed here with the blake3 package.

usage: check_index.py TREE INDEX.arrow
"""
import os
import sys

import blake3
import pyarrow as pa
import pyarrow.feather as feather

tree, path = sys.argv[1], sys.argv[2]
table = feather.read_table(path)
mtimes = table.column("mtime").cast(pa.int64()).to_pylist()
plain = table.drop_columns(["mtime"]).to_pylist()  # ns times do not fit datetime
rows = {r["path"]: (r, mtime) for r, mtime in zip(plain, mtimes)}
assert len(rows) == table.num_rows, "duplicate paths"

seen = set()
for dirpath, dirs, files in os.walk(tree):
    for name in dirs + files:
        full = os.path.join(dirpath, name)
        rel = os.path.relpath(full, tree)
        seen.add(rel)
        assert rel in rows, f"{rel}: on disk, not in the index"
        row, mtime = rows[rel]
        st = os.lstat(full)
        assert mtime == st.st_mtime_ns, f"{rel}: mtime {mtime} != {st.st_mtime_ns}"
        assert row["mode"] == st.st_mode, f"{rel}: mode"
        assert row["uid"] == st.st_uid and row["gid"] == st.st_gid, f"{rel}: owner"
        if os.path.islink(full):
            assert row["kind"] == "symlink", f"{rel}: {row['kind']}"
            assert row["link_target"] == os.readlink(full), f"{rel}: link target"
        elif os.path.isdir(full):
            assert row["kind"] == "dir", f"{rel}: {row['kind']}"
        else:
            assert row["kind"] == "file", f"{rel}: {row['kind']}"
            assert row["size"] == st.st_size, f"{rel}: size {row['size']} != {st.st_size}"
            with open(full, "rb") as f:
                digest = blake3.blake3(f.read()).hexdigest()
            assert row["blake3"] == digest, f"{rel}: blake3 {row['blake3']} != {digest}"
            assert row["repo"] == "main" and row["pkg_type"] == 3, f"{rel}: group"
assert seen == set(rows), f"in the index, not on disk: {set(rows) - seen}"
print(f"ok: {len(rows)} entries match")
