"""CSV import of users at scale: read + plan, then apply, of a file of ``--rows`` new users.

    .venv/bin/python bench/csv_import.py [--rows 100000] [--database-url postgresql+psycopg://...]

A provisiond server (API + worker) runs in its own process on a fresh database (SQLite unless
``--database-url``). The file is streamed to ``POST /api/v1/imports`` (read and planned: rows/s),
then applied (``POST /imports/{id}/apply``, polled until it ends: rows/s). Memory is the server
process's peak resident set (``VmHWM`` in /proc), before the upload and at the end: the import
keeps no more than a chunk of rows in memory, so the growth should not scale with the file.
No app is connected: this measures the directory side (validation, events, memberships).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import banner, bench_database, load_average, provisiond_server, workdir
from cli_startup import make_token


def write_file(path: Path, rows: int, groups: list[str]) -> int:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["login", "email", "firstName", "lastName", "department", "costCentre",
                         "groups"])
        for i in range(rows):
            writer.writerow([f"user{i:06d}", f"user{i:06d}@example.com", "First", f"Last{i}",
                             f"Dept {i % 40}", f"CC{i % 300}", groups[i % len(groups)]])
    return path.stat().st_size


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while block := file.read(1 << 16):
            yield block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="PostgreSQL (a fresh database is made on it)")
    args = parser.parse_args()
    banner("provisiond CSV import", rows=args.rows, database="postgresql" if args.database_url else "sqlite")
    with workdir() as work, bench_database(args.database_url, work) as database_url:
        token = make_token(database_url, work)
        with provisiond_server(database_url, work, startup_timeout=180) as (server, process):
            api = httpx.Client(base_url=f"{server}/api/v1", timeout=600,
                               headers={"Authorization": f"Bearer {token}"})
            groups = [f"Team {n}" for n in range(20)]
            for name in groups:
                api.post("/groups", json={"name": name}).raise_for_status()
            file = work / "users.csv"
            size = write_file(file, args.rows, groups)
            rss_start = peak_rss_mib(process.pid)
            print(f"# file: {args.rows} rows, {size / 1e6:.1f} MB; server peak RSS before: {rss_start:.0f} MiB")

            start = time.perf_counter()
            answer = api.post("/imports", content=chunks(file), headers={"Content-Type": "text/csv"})
            answer.raise_for_status()
            planned = answer.json()
            read_s = time.perf_counter() - start
            assert planned["status"] == "ready", planned["errors"][:5]
            rss_read = peak_rss_mib(process.pid)

            start = time.perf_counter()
            api.post(f"/imports/{planned['id']}/apply").raise_for_status()
            while (done := api.get(f"/imports/{planned['id']}").json())["status"] == "applying":
                time.sleep(1)
            apply_s = time.perf_counter() - start
            rss_end = peak_rss_mib(process.pid)
            assert done["status"] == "succeeded" and done["done"]["create"] == args.rows, done
            print("| phase | rows | seconds | rows/s | server peak RSS MiB |")
            print("|---|---:|---:|---:|---:|")
            print(f"| read + plan | {args.rows} | {read_s:.1f} | {args.rows / read_s:.0f} | {rss_read:.0f} |")
            print(f"| apply | {args.rows} | {apply_s:.1f} | {args.rows / apply_s:.0f} | {rss_end:.0f} |")
            print(f"# peak RSS growth over the server's own: {rss_end - rss_start:.0f} MiB")
    print(f"# load average at end: {load_average()}")


if __name__ == "__main__":
    main()
