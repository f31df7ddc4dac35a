"""Serving settings from the environment (`HUYING_*`), validated so unsafe values are refused.

    HUYING_BUNDLE=bundles/haikou12345-v1 HUYING_PORT=8080 huying serve

Every field is an environment variable: `max_text_chars` is `HUYING_MAX_TEXT_CHARS`. Build them with
`load_settings()` (a `SettingsError` naming the variable) and read them in handlers through the
`get_settings` dependency, so tests can override them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.errors import HuyingError

ENV_PREFIX = "HUYING_"
MIB = 1 << 20
# A JSON body carrying one complaint of `max_text_chars` CJK characters needs 3 bytes per
# character (UTF-8) plus room for the envelope and the other fields.
_BYTES_PER_CHAR = 3
_ENVELOPE_BYTES = 2048
_DB_SCHEMES = ("sqlite", "postgresql")


class SettingsError(HuyingError):
    """The serving settings are invalid or unsafe; the message names each variable and the fix."""


class Settings(BaseSettings):
    """Where the model and keys live, request limits, micro-batching and the listening address."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Model: an explicit bundle directory wins; otherwise the version named in bundles_dir/ACTIVE.
    bundle: Path | None = None
    # how often a replica checks bundles_dir/ACTIVE for a promotion made elsewhere (0: never)
    model_follow_interval_s: Annotated[float, Field(ge=0, le=3600)] = 2.0
    bundles_dir: Path = Path("bundles")
    database_url: str = "sqlite:///var/huying.db"
    api_keys_file: Path = Path("var/api_keys.json")
    demo_keys_file: Path = Path("var/demo-keys.txt")

    # Request limits: each breach is a 4xx that names the limit.
    max_text_chars: Annotated[int, Field(ge=1, le=100_000)] = 5000
    max_complaints: Annotated[int, Field(ge=1, le=10_000)] = 100
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * MIB)] = MIB

    # Micro-batching: see serving/batching.py and the numbers in benchmarks/load_bench.py.
    batch_max_size: Annotated[int, Field(ge=1, le=1024)] = 32
    batch_max_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 4.0
    # One single-threaded onnxruntime call per worker, a worker per core: on 2 shared cores this
    # routed 75-82% of offline throughput at 32 clients, ORT's own threading (threads=0) 55%,
    # as it spins and contends (benchmarks/load_bench.py). threads=0 means all cores per call.
    batch_workers: Annotated[int, Field(ge=0, le=64)] = 0  # 0: one per CPU core, at most 8
    threads: Annotated[int, Field(ge=0, le=256)] = 1
    queue_max: Annotated[int, Field(ge=1, le=1_000_000)] = 2048
    # Load shedding: a complaint that would wait longer than this for the router is refused
    # (503 + Retry-After) rather than answered late (serving/batching.py).
    queue_deadline_ms: Annotated[float, Field(gt=0, le=600_000)] = 2000.0

    # Duplicates (serving/duplicates.py): the similarity index of registered complaints lives in
    # index_dir/<model version>/. Thresholds are on the served similarity (model/lexical.py);
    # unset, they come from the bundle's calibrated duplicates.json (written by `huying train`
    # and `retrain`), else the defaults there.
    index_dir: Path = Path("var/index")
    index_save_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # how often the index reads what other replicas on the same store registered or removed
    # (0: never, a single server)
    index_follow_interval_s: Annotated[float, Field(ge=0, le=3600)] = 0.5
    duplicate_threshold: Annotated[float | None, Field(ge=-1, le=1)] = None  # same event
    duplicate_floor: Annotated[float | None, Field(ge=-1, le=1)] = None  # shown at all
    duplicate_window_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    duplicate_top_k: Annotated[int, Field(ge=1, le=100)] = 5
    # metadata a duplicate must share, as JSON: HUYING_DUPLICATE_MATCH='["channel"]'
    duplicate_match: tuple[Literal["channel", "location"], ...] = ()

    # The hotline's time zone (IANA name): the days of hot-issue trends and statistics
    time_zone: Annotated[str, Field(min_length=1, max_length=64)] = "Asia/Shanghai"
    # The districts statistics and early warnings count by, named in a complaint's location or
    # text (the demo's: Haikou's four), as JSON: HUYING_DISTRICTS='["南山区", "福田区"]'
    districts: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = (
        "龙华区", "秀英区", "美兰区", "琼山区")

    # Slow or idle clients (serving/server.py): a connection is closed when its request headers
    # take longer than header_timeout_s or its body longer than body_timeout_s; past
    # max_connections open ones, new connections are closed at once.
    header_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    body_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 1000

    # /metrics: open when unset (fine on the default 127.0.0.1); set, a scraper must send
    # `Authorization: Bearer <metrics_key>` (an admin key works too).
    metrics_key: SecretStr | None = None

    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    log_level: str = "info"
    access_log: bool = True

    @model_validator(mode="after")
    def _refuse_inconsistent(self) -> Settings:
        problems = []
        needed = self.max_text_chars * _BYTES_PER_CHAR + _ENVELOPE_BYTES
        if self.max_body_bytes < needed:
            problems.append(f"{ENV_PREFIX}MAX_BODY_BYTES={self.max_body_bytes} cannot hold one "
                            f"complaint of {ENV_PREFIX}MAX_TEXT_CHARS={self.max_text_chars} "
                            f"characters; raise it to at least {needed} or lower the text limit")
        if self.queue_max < self.batch_max_size:
            problems.append(f"{ENV_PREFIX}QUEUE_MAX={self.queue_max} is below "
                            f"{ENV_PREFIX}BATCH_MAX_SIZE={self.batch_max_size}: batches could "
                            "never fill; raise the queue or lower the batch size")
        if self.queue_max < self.max_complaints:
            problems.append(f"{ENV_PREFIX}QUEUE_MAX={self.queue_max} is below "
                            f"{ENV_PREFIX}MAX_COMPLAINTS={self.max_complaints}: a full request "
                            "could never be queued; raise the queue or lower the request limit")
        scheme = self.database_url.split(":", 1)[0].split("+", 1)[0]
        if scheme not in _DB_SCHEMES:
            problems.append(f"{ENV_PREFIX}DATABASE_URL must start with sqlite:/// or "
                            f"postgresql://, got {scheme!r}")
        if self.api_keys_file.resolve() == self.demo_keys_file.resolve():
            problems.append(f"{ENV_PREFIX}API_KEYS_FILE and {ENV_PREFIX}DEMO_KEYS_FILE are the "
                            "same file: the hashed key store would be overwritten by plaintext")
        if self.log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
            problems.append(f"{ENV_PREFIX}LOG_LEVEL must be one of critical, error, warning, "
                            f"info, debug, trace; got {self.log_level!r}")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"{ENV_PREFIX}TIME_ZONE={self.time_zone!r} is not an IANA time zone "
                            "such as Asia/Shanghai")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def batch_workers(settings: Settings) -> int:
    """The number of concurrent router calls: the setting, or one per usable core (at most 8)."""
    if settings.batch_workers:
        return settings.batch_workers
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may run on (containers)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `overrides`; invalid values raise SettingsError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"])
            where = f"{ENV_PREFIX}{name.upper()}: " if name else ""
            lines.append(f"{where}{error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid serving settings:\n  " + "\n  ".join(lines)) from exc
