"""Run the API with uvicorn: `serve(settings)`, or `python -m serving.main` (settings from env).

    HUYING_BUNDLE=bundles/haikou12345-v1 python -m serving.main
    # → http://127.0.0.1:8000/docs

On first start (no keys file) one key per role is created and printed once; the plaintexts are
also written to HUYING_DEMO_KEYS_FILE (var/demo-keys.txt, mode 600).
"""

from __future__ import annotations

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


def serve(settings: Settings | None = None) -> None:
    """Check the bundle, create first-start keys, then serve until interrupted."""
    settings = settings if settings is not None else load_settings()
    version = check_startup(settings)
    first_start_keys(settings)
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
