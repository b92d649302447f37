"""BOSS batch files (日话单文件): import one into the billing adapter from the command line, and write realistic
usage files for the tests and the bench.

`import_file` is a Typer command (`crm import`; alone: `python -m crm_kit.boss_files import FILE`): it streams
the file up with a progress bar, then follows the import job until it ends, and exits non-zero unless it completed.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from crm_kit.presentation import SHANGHAI

IMPORTS = "/boss/v1/imports"
FINISHED = ("completed", "failed", "cancelled")
FORMATS = ("csv", "ndjson")
MEDIA = {"csv": "text/csv", "ndjson": "application/x-ndjson"}
UPLOAD_CHUNK = 1024 * 1024
USAGE_COLUMNS = (
    "event_id",
    "customer_id",
    "account_id",
    "subscription_id",
    "msisdn",
    "occurred_at",
    "usage_date",
    "voice_minutes",
    "sms_count",
    "data_mb",
    "roaming",
    "roaming_voice_minutes",
    "roaming_data_mb",
    "charged_fen",
)
"""A usage CSV's header: the BOSS event id, then the fields of billing.usage.recorded.v1's data."""
PREFIXES = ("133", "135", "138", "139", "150", "153", "177", "180", "186", "189", "199")
MAX_SUBSCRIBERS = 50_000


def _body(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _problem(r: httpx.Response) -> str:
    return f"HTTP {r.status_code}: {_body(r).get('detail') or r.text[:500]}"


def import_file(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV or NDJSON file, or its .gz")
    ],
    url: Annotated[
        str,
        typer.Option(
            envvar="CRM_BILLING_ADAPTER_URL", help="The billing adapter (it takes files of any size up to its cap)"
        ),
    ] = "http://127.0.0.1:8002",
    token: Annotated[
        str | None, typer.Option(envvar="CRM_TOKEN", help="A bearer token with role billing_ops or admin")
    ] = None,
    source: Annotated[str, typer.Option(help="The BOSS source (计费源) the records come from")] = "boss",
    format: Annotated[str | None, typer.Option(help="csv or ndjson; from the file name when left out")] = None,
    poll_seconds: Annotated[float, typer.Option("--poll", help="Seconds between looks at the job")] = 1.0,
) -> dict[str, Any]:
    """Upload a BOSS batch file and follow its import to the end; the job as it ended."""
    if not token:
        raise typer.BadParameter("a bearer token is needed (--token or CRM_TOKEN)", param_hint="--token")
    if format is not None and format not in FORMATS:
        raise typer.BadParameter(f"{format!r}: use csv or ndjson", param_hint="--format")
    console = Console(stderr=True)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(60.0)) as http:
        try:
            job = _upload(http, console, path, source, format)
            job = _follow(http, console, job, poll_seconds)
        except httpx.HTTPError as exc:
            typer.echo(f"{url}: {exc}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(
        f"import {job['id']} {job['status']}: {job['lines_read']:,} lines read, {job['accepted']:,} accepted, "
        f"{job['duplicates']:,} duplicates, {job['rejected']:,} rejected"
    )
    if job["rejected"]:
        typer.echo(f"rejected lines: {url}{job['rejected_href']} (NDJSON; add ?format=csv for CSV)")
    if job["error"]:
        typer.echo(f"error: {job['error']}", err=True)
    if job["status"] != "completed":
        raise typer.Exit(1)
    return job


def _upload(http: httpx.Client, console: Console, path: Path, source: str, fmt: str | None) -> dict[str, Any]:
    """The file streamed up (never whole in memory); the new job, or the job this same file already has."""
    size = path.stat().st_size
    params = {"source": source, "file_name": path.name, **({"format": fmt} if fmt else {})}
    headers = {"Content-Type": MEDIA.get(fmt or "", "application/octet-stream"), "Content-Length": str(size)}
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"upload {path.name}", total=size)

        def body() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(UPLOAD_CHUNK):
                    bar.advance(task, len(chunk))
                    yield chunk

        r = http.post(IMPORTS, params=params, headers=headers, content=body(), timeout=httpx.Timeout(60.0, write=None))
    body = _body(r)
    if r.status_code == 202 and "id" in body:
        return body
    if r.status_code == 409 and "job_id" in body:
        typer.echo(f"{path.name} was uploaded before, as import {body['job_id']}: following it", err=True)
        return _get(http, body["job_id"])
    typer.echo(f"upload refused: {_problem(r)}", err=True)
    raise typer.Exit(1)


def _get(http: httpx.Client, job_id: str) -> dict[str, Any]:
    r = http.get(f"{IMPORTS}/{job_id}")
    if r.status_code != 200:
        typer.echo(f"import {job_id}: {_problem(r)}", err=True)
        raise typer.Exit(1)
    return r.json()  # type: ignore[no-any-return]


def _follow(http: httpx.Client, console: Console, job: dict[str, Any], poll_seconds: float) -> dict[str, Any]:
    """Polls the job until it ends, with a bar of bytes read (lines only, for gzip: its size is compressed)."""
    total = None if job["gzip"] else job["size_bytes"]
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("queued", total=total)
        while True:
            done = total * job["progress"] if total and job["progress"] is not None else None
            bar.update(
                task,
                completed=done,
                description=f"{job['status']}: {job['lines_read']:,} lines, {job['accepted']:,} accepted, "
                f"{job['rejected']:,} rejected",
            )
            if job["status"] in FINISHED:
                return job
            time.sleep(poll_seconds)
            job = _get(http, job["id"])


@dataclass(frozen=True)
class UsageFile:
    path: Path
    records: int
    bad_lines: list[int]
    """Line numbers (1-based; a CSV header is line 1) of the records made to break the contract."""


def write_usage_file(
    path: Annotated[Path, typer.Argument(help="Where to write; a name ending .gz is gzip-compressed")],
    lines: Annotated[int, typer.Option(min=0, help="How many usage records")] = 10_000,
    format: Annotated[str, typer.Option(help="csv or ndjson")] = "csv",
    seed: Annotated[int, typer.Option(help="The same seed writes the same file")] = 2026,
    bad_every: Annotated[
        int | None, typer.Option(min=1, help="Make every n-th record break the contract (data_mb -1)")
    ] = None,
) -> UsageFile:
    """A day file of BOSS usage records (日话单文件): one row per line and day, as the BOSS rates them."""
    if format not in FORMATS:
        raise typer.BadParameter(f"{format!r}: use csv or ndjson", param_hint="--format")
    opener = gzip.open if path.name.endswith(".gz") else open
    bad: list[int] = []
    first_line = 2 if format == "csv" else 1
    with opener(path, "wt", encoding="utf-8", newline="") as out:  # type: ignore[operator]
        write = _csv_writer(out) if format == "csv" else _ndjson_writer(out)
        for i, row in enumerate(usage_rows(lines, seed)):
            if bad_every and (i + 1) % bad_every == 0:
                row["data_mb"] = -1
                bad.append(first_line + i)
            write(row)
    typer.echo(f"{path}: {lines:,} usage records ({format}), {len(bad):,} made bad", err=True)
    return UsageFile(path, lines, bad)


def _csv_writer(out: IO[str]) -> Any:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(USAGE_COLUMNS)

    def write(row: dict[str, Any]) -> None:
        writer.writerow(
            [("true" if v else "false") if isinstance(v, bool) else ("" if v is None else v) for v in _cells(row)]
        )

    return write


def _cells(row: dict[str, Any]) -> list[Any]:
    return [row.get(c) for c in USAGE_COLUMNS]


def _ndjson_writer(out: IO[str]) -> Any:
    def write(row: dict[str, Any]) -> None:
        event_id = row.pop("event_id")
        record = {"event_id": event_id, "event_type": "usage.recorded", "data": row}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")

    return write


def usage_rows(lines: int, seed: int, day: date = date(2026, 11, 19)) -> Iterator[dict[str, Any]]:
    """`lines` records: every subscriber's usage on `day`, then the day before, and so on; fields as the
    billing.usage.recorded.v1 contract has them (roaming figures only when roaming)."""
    rng = random.Random(seed)
    subscribers = max(1, min(lines, MAX_SUBSCRIBERS))
    for i in range(lines):
        k, days_back = i % subscribers, i // subscribers
        customer = k * 2 // 3  # a customer has one or two lines
        usage_date = day - timedelta(days=days_back)
        weekend = usage_date.weekday() >= 5
        voice = int(rng.expovariate(1 / (18 if weekend else 30)))
        data_mb = int(rng.lognormvariate(6.8 if weekend else 6.5, 1.0))
        row: dict[str, Any] = {
            "event_id": f"USG-{seed}-{i:09d}",
            "customer_id": f"C{customer:09d}",
            "account_id": f"A{customer:09d}",
            "subscription_id": f"S{k:09d}",
            "msisdn": PREFIXES[k % len(PREFIXES)] + f"{(k * 7919 + seed) % 10**8:08d}",
            "occurred_at": datetime.combine(usage_date + timedelta(days=1), datetime.min.time(), SHANGHAI)
            .replace(hour=3, minute=(i // 60) % 60, second=i % 60)
            .isoformat(),
            "usage_date": usage_date.isoformat(),
            "voice_minutes": voice,
            "sms_count": int(rng.expovariate(1 / 2)),
            "data_mb": data_mb,
            "roaming": rng.random() < 0.03,
            "charged_fen": 0,
        }
        if row["roaming"]:
            row["roaming_voice_minutes"] = rng.randint(0, voice)
            row["roaming_data_mb"] = rng.randint(0, data_mb)
            row["charged_fen"] = row["roaming_voice_minutes"] * 99 + row["roaming_data_mb"] * 3
        elif rng.random() < 0.08:  # out of bundle (套外): extra minutes or data
            row["charged_fen"] = rng.randint(1, 60) * 10
        yield row
