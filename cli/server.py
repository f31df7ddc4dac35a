"""Serving: `huying serve`, and `huying up` (train the demo router if there is none, then serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    DEMO_DATASET,
    PresetOpt,
    app,
    domain_errors,
)
from cli.train import train_router

HostOpt = Annotated[str, typer.Option(help="Address to listen on.")]


PortOpt = Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")]
ReplicasOpt = Annotated[int, typer.Option(
    min=1, max=16, help="Server processes on consecutive ports from --port, on one store and "
                        "one bundles directory (they follow each other; put a load balancer "
                        "in front, see the README).")]


@app.command()
@domain_errors
def serve(
    bundle: Annotated[Path | None, typer.Option(
        help="Bundle to serve; default: the active one in the bundles directory.")] = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    replicas: ReplicasOpt = 1,
) -> None:
    """Serve the routing API (and the officer page at /review)."""
    from serving.main import serve as run_server
    from serving.settings import load_settings

    _check_ports(port, replicas)
    run_server(load_settings(**({"bundle": bundle} if bundle else {}), host=host, port=port),
               replicas=replicas)


def _check_ports(port: int, replicas: int) -> None:
    if port + replicas - 1 > 65535:
        raise typer.BadParameter(f"{replicas} replicas from port {port} run past 65535",
                                 param_hint="--replicas")


@app.command()
@domain_errors
def up(
    dataset_yaml: Annotated[Path, typer.Option("--dataset", help="Data to train on if no model "
                                               "exists yet.")] = DEMO_DATASET,
    preset: PresetOpt = "quick",
    precision: Annotated[str, typer.Option(help="int8 (default; fp32 if int8 loses accuracy) or "
                                                "fp32 ONNX.")] = "int8",
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    replicas: ReplicasOpt = 1,
) -> None:
    """The main job: train the quick router if there is none yet, then serve it.

    The version is named after the dataset, preset and data (e.g. haikou12345-quick-1a2b3c4d), so
    a rerun reuses a bundle that was written but not activated, and resumes an interrupted
    training from its checkpoint in runs/<version>/ instead of starting again."""
    from model.bundle import load_bundle
    from model.errors import BundleError
    from model.versions import active_version, set_active
    from serving.main import serve as run_server
    from serving.settings import load_settings
    from training.datasets import data_hash, load_dataset

    _check_ports(port, replicas)
    settings = load_settings(host=host, port=port)
    if settings.bundle is None and active_version(settings.bundles_dir) is None:
        dataset = load_dataset(dataset_yaml)
        version = f"{dataset.config.name}-{preset}-{data_hash(dataset.records)[:8]}"
        try:
            bundle = load_bundle(settings.bundles_dir / version)
            typer.secho(f"Reusing the router trained before: {bundle.path}", fg=typer.colors.CYAN)
        except BundleError:
            typer.secho(f"No router yet in {settings.bundles_dir}/: training the `{preset}` preset "
                        f"on {dataset_yaml.name} first (progress below; an interrupted run "
                        f"resumes from runs/{version}/).", fg=typer.colors.CYAN)
            bundle = train_router(dataset_yaml, preset, settings.bundles_dir, version=version,
                                   precision=precision)
        set_active(settings.bundles_dir, bundle.version)
    run_server(settings, replicas=replicas)
