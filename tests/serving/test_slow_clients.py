"""A real server process against slow and idle clients: they are cut off, the server answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def server(tmp_path, bundles_dir, key_file, server_process) -> Iterator[tuple[str, object]]:
    with server_process(tmp_path, bundles_dir, key_file[0],
                        HUYING_HEADER_TIMEOUT_S="1", HUYING_BODY_TIMEOUT_S="2",
                        HUYING_MAX_CONNECTIONS="40") as running:
        yield running


def _connect(port: int, payload: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if payload:
        s.sendall(payload)
    return s


def _closed_by_server(s: socket.socket, within_s: float) -> bool:
    s.settimeout(within_s)
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_headers_and_slow_bodies_are_cut_off(server):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    slow_headers = [_connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n") for _ in range(10)]
    slow_body = _connect(port, b"POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                               b"Content-Type: application/json\r\n\r\n{\"compl")
    started = time.monotonic()
    assert all(_closed_by_server(s, 5) for s in slow_headers)
    assert time.monotonic() - started < 4
    assert _closed_by_server(slow_body, 6)
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


def test_past_the_connection_cap_new_connections_are_closed_and_the_server_recovers(server):
    url, process = server
    port = int(url.rsplit(":", 1)[1])
    idle = [_connect(port, b"") for _ in range(60)]  # cap 40
    refused = sum(_closed_by_server(s, 0.5) for s in idle[45:])
    assert refused == len(idle[45:])
    for s in idle:
        s.close()
    time.sleep(0.5)
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    assert process.poll() is None
