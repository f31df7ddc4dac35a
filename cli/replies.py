"""Instant replies: `huying replies seed FILE` fills the reply memory (serving/reply_memory.py)
from answered messages, without a running server.

    huying replies seed ../shared/data/teddy2020c/messages-with-replies-fj4.jsonl --limit 200

It opens the store and loads the active model from the serving settings (HUYING_DATABASE_URL,
HUYING_BUNDLES_DIR …) as `huying serve` would, and saves the similarity index where the server
reads it (HUYING_INDEX_DIR). Stop a server on the same SQLite file first, or restart it after:
a running server does not see complaints it did not register until it rebuilds its index.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import app, domain_errors
from model.errors import DataError

replies_app = typer.Typer(
    help="Instant replies (秒回): the reply memory complaints are answered from.",
    epilog="Example: huying replies seed ../shared/data/teddy2020c/messages-with-replies-fj4.jsonl",
    no_args_is_help=True,
)
app.add_typer(replies_app, name="replies")

SHOWN_ERRORS = 20


@replies_app.command("seed")
@domain_errors
def replies_seed(
    messages: Annotated[Path, typer.Argument(
        help="JSONL (or .jsonl.gz) of answered messages: id, time, title, text, reply, "
             "reply_time (the Teddy Cup's messages-with-replies-fj4.jsonl).",
        show_default=False)],
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows of the file.")]
        = None,
    prefix: Annotated[str, typer.Option(help="Prefix of the complaint ids.")] = "fj4-",
    batch: Annotated[int, typer.Option(min=1, max=100, help="Complaints per registration.")]
        = 32,
) -> None:
    """Register each answered message as a complaint (routed, stored, indexed, joined to its hot
    issue; received at its time in HUYING_TIME_ZONE) and record its reply as a `replied` event.
    Ids already registered are skipped; bad rows are listed and skipped."""
    import asyncio
    from zoneinfo import ZoneInfo

    from serving.reply_memory import answered_messages
    from serving.settings import load_settings

    if not prefix or any(ord(ch) < 32 for ch in prefix):
        raise DataError("--prefix must be non-empty printable text, e.g. fj4-")
    rows, unreadable = _rows(messages, limit)
    settings = load_settings()
    found, bad = answered_messages(rows, zone=ZoneInfo(settings.time_zone), prefix=prefix)
    bad = sorted(unreadable + bad)
    if not found:
        _show(messages, bad)
        raise DataError(f"{messages}: no row makes an answered message; each needs id, time, "
                        "title or text, reply and reply_time")
    started = time.perf_counter()
    report = asyncio.run(_seed(settings, found, batch))
    seconds = time.perf_counter() - started
    _show(messages, bad + report.failed)
    typer.echo(f"{report.registered} complaints registered, {report.skipped} already registered "
               f"(skipped), {report.replies} replies recorded, "
               f"{len(bad) + len(report.failed)} rows refused; {seconds:.0f} s "
               f"({seconds / max(len(found), 1) * 1000:.0f} ms a message)")


async def _seed(settings: Any, found: list[Any], batch: int) -> Any:
    from tqdm import tqdm

    from serving.app import create_app
    from serving.reply_memory import seed

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        if services.slot.router is None:
            raise DataError(f"no model to route with: {services.slot.load_error}")
        if not services.duplicates.ready:
            raise DataError("the similarity index could not be built: "
                            f"{services.duplicates.status()['error']}")
        typer.echo(f"seeding {len(found)} answered messages with model "
                   f"{services.slot.router.version} into {settings.database_url}")
        with tqdm(total=len(found), unit="msg") as bar:
            return await seed(services, found, batch=batch, progress=bar.update)


def _rows(path: Path, limit: int | None
          ) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """The first `limit` rows (line, JSON) of the file, and (line, why) for unreadable ones."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; pass a JSONL file of answered messages, e.g. "
                        "../shared/data/teddy2020c/messages-with-replies-fj4.jsonl")
    opener: Any = gzip.open if path.suffix == ".gz" else open
    rows, unreadable = [], []
    try:
        with opener(path, "rt", encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    unreadable.append((n, f"not valid JSON ({exc.msg})"))
                if limit is not None and len(rows) + len(unreadable) >= limit:
                    break
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read as UTF-8 JSONL ({exc})") from exc
    return rows, unreadable


def _show(path: Path, problems: list[tuple[int, str]]) -> None:
    for line, why in sorted(problems)[:SHOWN_ERRORS]:
        typer.secho(f"{path}:{line}: {why}", fg=typer.colors.YELLOW, err=True)
    if len(problems) > SHOWN_ERRORS:
        typer.secho(f"… and {len(problems) - SHOWN_ERRORS} more refused rows", err=True,
                    fg=typer.colors.YELLOW)
