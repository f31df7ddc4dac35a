"""Run the API with uvicorn: `serve(settings)`, or `python -m serving.main` (settings from env).

    HUYING_BUNDLE=bundles/haikou12345-v1 python -m serving.main
    # → http://127.0.0.1:8000/docs

On first start (no keys file) one key per role is created and printed once; the plaintexts are
also written to HUYING_DEMO_KEYS_FILE (var/demo-keys.txt, mode 600).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import uvicorn

from model.bundle import load_bundle
from model.errors import HuyingError
from serving.app import bundle_to_serve, create_app
from serving.auth import bootstrap_keys
from serving.server import guarded_protocol, prepare_process
from serving.settings import Settings, SettingsError, load_settings

# Files the process needs besides client sockets: the database, the model, the index, logs.
_SPARE_FILES = 64


def check_startup(settings: Settings) -> str:
    """Fail before binding the port if there is nothing to serve; returns the bundle version."""
    bundle = load_bundle(bundle_to_serve(settings))
    return bundle.version


def first_start_keys(settings: Settings,
                     echo: Callable[[str], object] = print) -> dict[str, str] | None:
    """Create and print one key per role if there is no keys file yet."""
    created = bootstrap_keys(settings.api_keys_file, settings.demo_keys_file)
    if created:
        echo(f"Created API keys (shown once; also in {settings.demo_keys_file}, mode 600):")
        for role, key in created.items():
            echo(f"  {role:8} {key}")
    return created


def start_replicas(settings: Settings, count: int) -> list[subprocess.Popen[bytes]]:
    """`count` more server processes on the next ports, each with its own index folder, on the
    same store and bundles (they follow each other: serving/duplicates.py, active_model.py)."""
    processes = []
    for n in range(1, count + 1):
        env = {**os.environ, **{f"HUYING_{k.upper()}": str(v) for k, v in (
            ("bundles_dir", settings.bundles_dir), ("database_url", settings.database_url),
            ("api_keys_file", settings.api_keys_file), ("demo_keys_file",
                                                         settings.demo_keys_file),
            ("host", settings.host), ("port", settings.port + n),
            ("index_dir", settings.index_dir / f"replica-{n}"))}}
        if settings.bundle is not None:
            env["HUYING_BUNDLE"] = str(settings.bundle)
        processes.append(subprocess.Popen([sys.executable, "-m", "serving.main"], env=env))
        print(f"Replica {n + 1} on http://{settings.host}:{settings.port + n}", flush=True)
    return processes


def serve(settings: Settings | None = None, *, replicas: int = 1) -> None:
    """Check the bundle, create first-start keys, then serve until interrupted; with `replicas`
    > 1, as that many processes on consecutive ports (put a load balancer in front: README)."""
    settings = settings if settings is not None else load_settings()
    version = check_startup(settings)
    first_start_keys(settings)
    others = start_replicas(settings, replicas - 1) if replicas > 1 else []
    try:
        _run(settings, version)
    finally:
        for p in others:
            p.terminate()
        for p in others:
            p.wait(30)


def _run(settings: Settings, version: str) -> None:
    limits = prepare_process()
    if settings.max_connections + _SPARE_FILES > limits["open_files"]:
        raise SettingsError(f"HUYING_MAX_CONNECTIONS={settings.max_connections} needs more open "
                            f"files than this process may have ({limits['open_files']}); lower "
                            "it or raise the limit (ulimit -n)")
    print(f"Serving model {version} on http://{settings.host}:{settings.port} "
          f"(docs: http://{settings.host}:{settings.port}/docs)", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, access_log=settings.access_log,
                http=guarded_protocol(header_timeout_s=settings.header_timeout_s,
                                      body_timeout_s=settings.body_timeout_s,
                                      max_connections=settings.max_connections),
                timeout_keep_alive=5)


if __name__ == "__main__":
    try:
        serve()
    except HuyingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
