"""API keys with roles, stored hashed, checked in constant time.

A key looks like `hy_3f9a1c0e_<43 random characters>`: `3f9a1c0e` is its public id (how the key
is found, listed and revoked), the rest is the secret. The keys file (`HUYING_API_KEYS_FILE`,
mode 600) holds per key: id, name, role, a random salt and HMAC-SHA256(salt, secret), never the
secret. A slow password hash (scrypt) would add milliseconds to every request for nothing: the
secret has 256 random bits, so guessing it is infeasible however fast the hash is.

Roles: `intake` routes complaints, `officer` reviews, `admin` manages models; admin implies all.
Send the key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.

    from serving.auth import create_key
    plaintext = create_key(Path("var/api_keys.json"), "intake", name="12345 hotline desk")
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from model.errors import InvalidInput, NotFound
from serving.errors import Forbidden, Misconfigured, Unauthorized

KEY_PREFIX = "hy"
FILE_FORMAT = 1
SCHEME = "hmac-sha256"
_ID_HEX = 8
# Serialises read-modify-write of the keys file within this process (the CLI is the other writer).
_WRITE_LOCK = threading.Lock()


class Role(StrEnum):
    intake = "intake"
    officer = "officer"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    """Who made a request: the key's public id, its name and role."""

    key_id: str
    name: str
    role: Role

    def has(self, role: Role) -> bool:
        return self.role == Role.admin or self.role == role


@dataclass(frozen=True)
class _StoredKey:
    key_id: str
    name: str
    role: Role
    salt: bytes
    digest: bytes


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def _parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}; choose one of "
                           f"{', '.join(r.value for r in Role)}", field="role") from None


class KeyStore:
    """The keys file, read on first use and re-read when it changes on disk (`huying keys add`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, _StoredKey] = {}
        self._dummy_salt = secrets.token_bytes(16)

    def authenticate(self, presented: str | None) -> Principal:
        """The principal of a presented key; Unauthorized says what is missing or wrong."""
        if not presented:
            raise Unauthorized("an API key is required: send `Authorization: Bearer <key>` or "
                               "`X-API-Key: <key>` (an admin creates keys with `huying keys add`)")
        keys = self._current()
        if not keys:
            raise Unauthorized(f"no API keys are configured ({self.path} is missing or empty); "
                               "create one with `huying keys add --role intake`")
        key_id, secret = _split(presented)
        stored = keys.get(key_id)
        # Hash and compare even for unknown ids so the response time does not tell them apart.
        salt = stored.salt if stored else self._dummy_salt
        expected = stored.digest if stored else bytes(32)
        ok = hmac.compare_digest(_digest(salt, secret), expected)
        if stored is None or not ok:
            raise Unauthorized("the API key is not valid: check for a typo or a revoked key")
        return Principal(key_id=stored.key_id, name=stored.name, role=stored.role)

    def _current(self) -> dict[str, _StoredKey]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._keys = {k.key_id: k for k in _read(self.path)}
                except InvalidInput as exc:  # the operator's file is broken, not the request
                    raise Misconfigured(f"the server cannot read its API keys: {exc}") from exc
                self._stamp = stamp
        return self._keys


def require(principal: Principal, role: Role) -> Principal:
    """`principal` if its role allows `role`; Forbidden names the role needed."""
    if not principal.has(role):
        needed = role.value if role == Role.admin else f"{role.value} (or admin)"
        raise Forbidden(f"this endpoint needs the {needed} role; the key {principal.key_id} has "
                        f"the {principal.role.value} role")
    return principal


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key`, whichever is present."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be `Bearer <key>`")
        return value.strip()
    return x_api_key.strip() if x_api_key else None


def create_key(path: Path, role: str | Role, name: str = "") -> str:
    """Add a key with `role` to the keys file and return its plaintext: shown once, never stored."""
    role = _parse_role(role)
    key_id = secrets.token_hex(_ID_HEX // 2)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    with _WRITE_LOCK:
        data = _load_raw(path)
        data["keys"].append({
            "id": key_id, "name": name or f"{role.value} key", "role": role.value,
            "scheme": SCHEME, "salt": salt.hex(), "hash": _digest(salt, secret).hex(),
            "created": datetime.now(UTC).isoformat(timespec="seconds")})
        _write_private(path, json.dumps(data, ensure_ascii=False, indent=2))
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def revoke_key(path: Path, key_id: str) -> None:
    """Remove the key with public id `key_id` (the 8 characters after `hy_`)."""
    with _WRITE_LOCK:
        data = _load_raw(path)
        kept = [k for k in data["keys"] if k.get("id") != key_id]
        if len(kept) == len(data["keys"]):
            raise NotFound(f"no key with id {key_id!r} in {path}; `huying keys list` shows them")
        data["keys"] = kept
        _write_private(path, json.dumps(data, ensure_ascii=False, indent=2))


def list_keys(path: Path) -> list[dict[str, str]]:
    """Id, name, role and creation time of every key (no secrets, no hashes)."""
    return [{"id": k["id"], "name": k.get("name", ""), "role": k["role"],
             "created": k.get("created", "")} for k in _load_raw(path)["keys"]]


def bootstrap_keys(path: Path, demo_file: Path) -> dict[str, str] | None:
    """On first start (no keys file): one key per role, plaintexts also written to `demo_file`.

    Returns {role: plaintext} to print once, or None when a keys file already exists. The demo
    file (mode 600) can be sourced by a shell: `. var/demo-keys.txt; echo $HUYING_INTAKE_KEY`.
    """
    if Path(path).exists():
        return None
    created = {role.value: create_key(path, role, name=f"first-start {role.value} key")
               for role in Role}
    lines = ["# Huying API keys created on first start. Keep this file private; delete it once",
             "# the keys are stored elsewhere. Use: . var/demo-keys.txt",
             *(f"HUYING_{role.upper()}_KEY={key}" for role, key in created.items())]
    _write_private(demo_file, "\n".join(lines) + "\n")
    return created


def _split(presented: str) -> tuple[str, str]:
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or len(key_id) != _ID_HEX or not secret:
        raise Unauthorized(f"the API key is malformed: keys look like "
                           f"{KEY_PREFIX}_<8 hex>_<secret>")
    return key_id, secret


def _read(path: Path) -> list[_StoredKey]:
    keys = []
    for i, k in enumerate(_load_raw(path)["keys"]):
        try:
            keys.append(_StoredKey(key_id=str(k["id"]), name=str(k.get("name", "")),
                                   role=_parse_role(k["role"]), salt=bytes.fromhex(k["salt"]),
                                   digest=bytes.fromhex(k["hash"])))
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise InvalidInput(f"{path}: key {i + 1} is malformed ({exc}); remove it or recreate "
                               "it with `huying keys add`", field="api_keys_file") from exc
    return keys


def _load_raw(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": FILE_FORMAT, "keys": []}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a readable keys file ({exc}); fix it or move it away "
                           "and create keys again", field="api_keys_file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise InvalidInput(f"{path} is not a keys file: expected "
                           '{"format": 1, "keys": [...]}', field="api_keys_file")
    return data


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 600, atomically (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
