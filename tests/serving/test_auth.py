"""API keys: plaintext shown once, stored salted and hashed; roles, revocation, first start."""

from __future__ import annotations

import json
import stat

import pytest

from model.errors import InvalidInput, NotFound
from serving.auth import (
    KeyStore,
    Principal,
    Role,
    bootstrap_keys,
    create_key,
    list_keys,
    presented_key,
    require,
    revoke_key,
)
from serving.errors import Forbidden, Misconfigured, Unauthorized


def test_the_keys_file_holds_hashes_never_the_key(tmp_path):
    path = tmp_path / "var" / "api_keys.json"
    key = create_key(path, "intake", name="hotline desk")
    assert key.startswith("hy_")
    raw = path.read_text()
    assert key not in raw and key.split("_", 2)[2] not in raw
    [entry] = json.loads(raw)["keys"]
    assert entry["role"] == "intake" and entry["name"] == "hotline desk"
    assert len(bytes.fromhex(entry["salt"])) == 16 and len(bytes.fromhex(entry["hash"])) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_same_secret_different_salt_different_hash(tmp_path):
    path = tmp_path / "keys.json"
    create_key(path, "intake")
    create_key(path, "intake")
    hashes = {k["hash"] for k in json.loads(path.read_text())["keys"]}
    salts = {k["salt"] for k in json.loads(path.read_text())["keys"]}
    assert len(hashes) == 2 and len(salts) == 2


def test_authenticate_finds_the_principal_and_refuses_others(tmp_path):
    path = tmp_path / "keys.json"
    key = create_key(path, Role.officer, name="officer Li")
    store = KeyStore(path)
    principal = store.authenticate(key)
    assert principal.role == Role.officer and principal.name == "officer Li"
    assert principal.key_id == key.split("_")[1]
    for bad in (key + "x", key[:-1], "hy_" + "0" * 8 + "_" + key.split("_", 2)[2], "hy__x",
                "garbage", None, ""):
        with pytest.raises(Unauthorized):
            store.authenticate(bad)


def test_keys_added_or_revoked_while_running_are_seen(tmp_path):
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    with pytest.raises(Unauthorized, match="huying keys add"):
        store.authenticate("hy_00000000_x")
    key = create_key(path, "admin")
    assert store.authenticate(key).role == Role.admin
    revoke_key(path, key.split("_")[1])
    with pytest.raises(Unauthorized):
        store.authenticate(key)
    with pytest.raises(NotFound, match="huying keys list"):
        revoke_key(path, "deadbeef")


def test_roles_admin_implies_all():
    admin = Principal("a", "", Role.admin)
    intake = Principal("i", "", Role.intake)
    for role in Role:
        assert require(admin, role) is admin
    assert require(intake, Role.intake) is intake
    with pytest.raises(Forbidden, match="needs the officer .or admin. role"):
        require(intake, Role.officer)
    with pytest.raises(Forbidden, match="needs the admin role; the key i has the intake role"):
        require(intake, Role.admin)


def test_unknown_role_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="intake, officer, admin"):
        create_key(tmp_path / "keys.json", "superuser")


def test_presented_key_from_either_header():
    assert presented_key("Bearer hy_1", None) == "hy_1"
    assert presented_key("bearer  hy_1 ", None) == "hy_1"
    assert presented_key(None, " hy_2 ") == "hy_2"
    assert presented_key(None, None) is None
    with pytest.raises(Unauthorized, match="Bearer <key>"):
        presented_key("Basic abc", None)


def test_first_start_creates_one_key_per_role_and_a_private_demo_file(tmp_path):
    keys_file, demo = tmp_path / "var" / "api_keys.json", tmp_path / "var" / "demo-keys.txt"
    created = bootstrap_keys(keys_file, demo)
    assert set(created) == {"intake", "officer", "admin"}
    assert stat.S_IMODE(demo.stat().st_mode) == 0o600
    text = demo.read_text()
    assert f"HUYING_INTAKE_KEY={created['intake']}" in text
    store = KeyStore(keys_file)
    assert {store.authenticate(k).role.value for k in created.values()} == set(created)
    assert [k["role"] for k in list_keys(keys_file)] == ["intake", "officer", "admin"]
    assert "hash" not in list_keys(keys_file)[0]
    assert bootstrap_keys(keys_file, demo) is None  # only on first start


def test_a_corrupt_keys_file_is_a_clear_error(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    with pytest.raises(Misconfigured, match="not a readable keys file") as refused:
        KeyStore(path).authenticate("hy_00000000_x")
    assert refused.value.status == 503
