"""Settings validation, the bundles registry (ACTIVE pointer) and the import-time guarantees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from model import versions
from model.errors import InvalidInput, NotFound
from serving.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_safe_and_local():
    s = load_settings()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.bundles_dir == Path("bundles") and s.bundle is None
    assert s.database_url == "sqlite:///var/huying.db"
    assert (s.max_text_chars, s.max_complaints, s.max_body_bytes) == (5000, 100, 1 << 20)
    assert (s.batch_max_size, s.batch_max_wait_ms) == (32, 4.0)


def test_settings_come_from_huying_environment(monkeypatch):
    monkeypatch.setenv("HUYING_PORT", "9001")
    monkeypatch.setenv("HUYING_BUNDLE", "bundles/x")
    s = load_settings()
    assert s.port == 9001 and s.bundle == Path("bundles/x")


@pytest.mark.parametrize(("overrides", "names"), [
    ({"port": 0}, "HUYING_PORT"),
    ({"max_text_chars": 0}, "HUYING_MAX_TEXT_CHARS"),
    ({"batch_max_wait_ms": 5000}, "HUYING_BATCH_MAX_WAIT_MS"),
    ({"max_body_bytes": 1 << 30}, "HUYING_MAX_BODY_BYTES"),
    ({"max_body_bytes": 4096}, "raise it to at least 17048"),
    ({"queue_max": 8}, "HUYING_QUEUE_MAX=8 is below HUYING_BATCH_MAX_SIZE=32"),
    ({"queue_max": 64}, "HUYING_QUEUE_MAX=64 is below HUYING_MAX_COMPLAINTS=100"),
    ({"database_url": "mysql://x"}, "HUYING_DATABASE_URL must start with"),
    ({"api_keys_file": "var/k", "demo_keys_file": "var/k"}, "plaintext"),
    ({"log_level": "loud"}, "HUYING_LOG_LEVEL"),
])
def test_invalid_or_unsafe_settings_are_refused_with_the_variable_named(overrides, names):
    with pytest.raises(SettingsError) as refused:
        load_settings(**overrides)
    assert names in str(refused.value)


def test_active_pointer_round_trip(bundles_dir):
    assert versions.active_version(bundles_dir) == "tiny-v1"
    assert versions.set_active(bundles_dir, "tiny-v2") == bundles_dir / "tiny-v2"
    assert versions.active_bundle_path(bundles_dir) == bundles_dir / "tiny-v2"
    assert (bundles_dir / "ACTIVE").read_text() == "tiny-v2\n"


def test_active_pointer_errors_say_how_to_fix(tmp_path, bundles_dir):
    with pytest.raises(NotFound, match="huying train"):
        versions.active_bundle_path(tmp_path / "empty")
    with pytest.raises(NotFound, match="available: tiny-v1, tiny-v2"):
        versions.set_active(bundles_dir, "tiny-v3")
    for bad in ("../etc", "a/b", ".hidden", "", "x" * 200):
        with pytest.raises(InvalidInput):
            versions.set_active(bundles_dir, bad)


def test_list_bundles_reads_metrics_and_flags_broken_ones(bundles_dir):
    (bundles_dir / "junk").mkdir()  # no bundle.json: not listed
    (bundles_dir / "bad").mkdir()
    (bundles_dir / "bad" / "bundle.json").write_text("{nope")
    by_version = {s.version: s for s in versions.list_bundles(bundles_dir)}
    assert set(by_version) == {"tiny-v1", "tiny-v2", "bad"}
    assert by_version["tiny-v1"].active and not by_version["tiny-v2"].active
    assert 0 <= by_version["tiny-v1"].accuracy["department"] <= 1
    assert by_version["bad"].error.startswith("unreadable")


def test_importing_the_app_loads_neither_torch_nor_a_model():
    # create_app without starting it must not touch the (missing) bundle either.
    code = ("import sys, serving.app, serving.main\n"
            "from serving.settings import load_settings\n"
            "serving.app.create_app(load_settings(bundle='does-not-exist'))\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         check=True)
    assert out.stdout.strip() == "False"
