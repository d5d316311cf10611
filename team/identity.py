"""People: Argon2id password hashes, login, and 24-hour JWTs signed by OpenBao transit.

The signing key is an Ed25519 transit key: it never leaves OpenBao, and each token names the
key version that signed it (``kid``), so the key can be rotated in OpenBao while older tokens stay
valid until they expire. Replicas check signatures locally with the public keys, fetched once
per version.

Every token also names its user's *session epoch* (``users.session_epoch``): removing the user,
changing their role or password, or signing them out bumps it, and :meth:`Tokens.principal`
accepts a token only while its user exists with that epoch, taking the role from the row, not
the token. That is one primary-key lookup per request in the PostgreSQL every replica shares, so
it applies on every replica at the next request. A removed user's epoch is remembered as a floor
for users created later (``team_meta``), so removing and adding an address again never revives
the old tokens.

Whatever ends a person's logins (removal, a new role or password, a sign-out) also revokes the API
keys made with their authority, in the same transaction (:func:`_revoke_made_by`): a key minted
with a stolen or since-demoted admin login must not outlive that login. For the same reason the
admin users made with the logins that end (``users.created_by`` and ``created_epoch``), or with
those keys, are demoted to member and their own logins ended, and so on for what they made
(:func:`_end_made_by`); the answer and the audit name them. Every admin write checks its caller's
standing again inside its own transaction (:func:`hold_admin`), after the request's body arrived.

Failed logins are counted in PostgreSQL, so every replica sees the same counts, per account and
client network (:func:`client_network`) and per client network alone. An attempt is recorded as a
failure *before* its password is checked, under an advisory lock on the network, so a burst spread
over replicas gets no more password checks than the limit. A network over its limit is refused
without a check; other networks still log in to the same account, so a stranger cannot lock the
real user out (docs/team-mode.md, "Login limits").
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from clavis_mcp.vault.errors import ApiRefused

from .bao import Bao
from .keys import ALL, FIRST_ADMIN_KEY, Principal

TOKEN_TTL = 86400
MAX_FAILURES = 5  # failed logins to one account from one client network ...
FAILURE_WINDOW = 300  # ... within this many seconds, before that network's logins to it are refused
MAX_NETWORK_FAILURES = 20  # failed logins from one client network to any accounts in the window
# No control characters (PostgreSQL cannot store NUL) and no ':': ``user/<email>`` is the embedded
# proxy's Basic-auth user name, which ends at the first colon.
EMAIL = re.compile(r"^[^@\s:\x00-\x1f\x7f-\x9f]{1,64}@[^@\s:\x00-\x1f\x7f-\x9f]{1,255}$")
MIN_PASSWORD = 12
KEY_REFETCH_SECONDS = 10.0  # an unknown, newer JWT key version is looked up in OpenBao at most this often
KEY_FETCH_WAIT = 2.0  # seconds a request (on the event loop) waits for that look-up
_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# A hash to check against when the address is unknown, so the answer takes as long either way.
_DUMMY = _hasher.hash("not a password of anyone")
EPOCH_FLOOR = "removed_user_epoch_floor"  # team_meta: above the epoch of every user ever removed
_ADMINS_LOCK = 7478202  # serialises user changes: two cannot remove the last two admins, nor re-add under a stale floor
ENDED = (
    "this login has ended on the server: you were signed out, your role or password changed, or your "
    "account was removed; log in again (`clavis-mcp login`) or ask a team admin"
)


def _check_role(role: str) -> None:
    if role not in ("admin", "member"):
        raise ApiRefused(400, f"invalid role {role!r}: use admin or member")


def _check_email(email: str) -> None:
    if not EMAIL.fullmatch(email):
        raise ApiRefused(
            400,
            f"invalid e-mail address {email!r}: use NAME@DOMAIN without spaces, control characters or ':'",
        )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ApiRefused(400, f"the password is too short: use at least {MIN_PASSWORD} characters")


def create_user(
    conn: psycopg.Connection[Any], email: str, password: str, role: str, by: Principal | None = None
) -> None:
    """Add a user, recording ``by`` (the admin who asks; None for the bootstrap) and its login's
    epoch, so that ending that login demotes what it made (:func:`_end_made_by`)."""
    _check_email(email)
    _check_role(role)
    _check_password(password)
    hashed = _hasher.hash(password)  # slow: before the lock
    try:
        with conn.transaction():  # after any removal in flight has committed, so its floor is read
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADMINS_LOCK,))
            if by is not None:
                _check_standing(conn, by)
            conn.execute(
                "INSERT INTO users (email, password_hash, role, session_epoch, created_by, created_epoch)"
                " VALUES (%s, %s, %s, COALESCE((SELECT value FROM team_meta WHERE key = %s), 0), %s, %s)",
                (email.lower(), hashed, role, EPOCH_FLOOR, by.name if by else None, by.epoch if by else None),
            )
    except psycopg.errors.UniqueViolation:
        raise ApiRefused(409, f"a user {email!r} already exists") from None


def list_users(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT email, role, created_at FROM users ORDER BY email").fetchall()
    return [{"email": email, "role": role, "created_at": created.isoformat()} for email, role, created in rows]


def session_of(conn: psycopg.Connection[Any], email: str) -> tuple[str, int] | None:
    """The user's role and session epoch; None if there is no such user."""
    row = conn.execute("SELECT role, session_epoch FROM users WHERE email = %s", (email,)).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def token_epoch(claims: dict[str, Any]) -> int | None:
    """The session epoch a token was issued under (0 for a token from before epochs); None if malformed."""
    epoch = claims.get("epoch", 0)
    return epoch if type(epoch) is int else None


def _locked_user(
    conn: psycopg.Connection[Any], email: str, last_admin_may_not: str | None, by: Principal | None
) -> tuple[str, int]:
    """Inside a transaction: the user's role and epoch, with removals and role changes serialised;
    401 if ``by`` (the admin who asks) has lost that standing; 409 if the user is the last admin and
    ``last_admin_may_not`` (what is asked) would end that."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADMINS_LOCK,))
    if by is not None:
        _check_standing(conn, by)
    found = None if "\x00" in email else session_of(conn, email)  # no row can hold a NUL
    if found is None:
        raise ApiRefused(404, f"no user {email!r}; list them with `clavis-mcp team user list`")
    if found[0] == "admin" and last_admin_may_not is not None:
        (admins,) = conn.execute("SELECT count(*) FROM users WHERE role = 'admin'").fetchone() or (0,)
        if admins <= 1:
            raise ApiRefused(
                409,
                f"cannot {last_admin_may_not} {email!r}: they are the last admin user. Make another user admin first "
                "(`clavis-mcp team user role EMAIL admin`); admin API keys do not count, so that a person "
                "can always log in and manage the team",
            )
    return found


def remove_user(
    conn: psycopg.Connection[Any], email: str, *, keep_keys: bool = False, by: Principal | None = None
) -> tuple[list[str], list[str]]:
    """Delete the user; every token of theirs fails at its next use, on every replica. The API keys
    they made, and the keys made with those, and so on (that still work), are revoked with them in
    the same transaction, unless ``keep_keys``: a departed person may hold a copy of each; the admin
    users made with their logins are demoted (:func:`_end_made_by`). Returns those keys' names and
    the demoted users. Keys being made meanwhile wait for this (:func:`hold_admin`)."""
    email = email.lower()
    with conn.transaction():
        _, epoch = _locked_user(conn, email, "remove", by)
        conn.execute("DELETE FROM users WHERE email = %s", (email,))
        conn.execute(
            "INSERT INTO team_meta (key, value) VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = GREATEST(team_meta.value, EXCLUDED.value)",
            (EPOCH_FLOOR, epoch + 1),
        )
        return _end_made_by(conn, email, epoch, keep_keys=keep_keys, first_admin_key=True)


def _end_made_by(
    conn: psycopg.Connection[Any], email: str, epoch: int, *, keep_keys: bool, first_admin_key: bool
) -> tuple[list[str], list[str]]:
    """Inside the transaction that ends ``email``'s logins of session ``epoch``: revoke the keys made
    with their authority (:func:`_revoke_made_by`; only list them if ``keep_keys``), then demote to
    member, and end the logins of, every admin user made with those logins or revoked keys, and so
    on for what those users made. Demoted rather than listed: an account made with a stolen login
    is the thief's way back in, with its own password. 409 if that would leave no admin user.
    Returns the keys' and the demoted users' names, sorted."""
    keys: list[str] = []
    demoted: list[str] = []
    ended = [(email, epoch, not keep_keys, first_admin_key)]
    while ended:
        who, at, revoke, first = ended.pop()
        made = _revoke_made_by(conn, who, revoke=revoke, first_admin_key=first)
        keys += made
        rows = conn.execute(
            "UPDATE users SET role = 'member', session_epoch = session_epoch + 1 WHERE role = 'admin' AND"
            " ((created_by = %s AND created_epoch = %s) OR created_by = ANY(%s)) RETURNING email, session_epoch - 1",
            (f"user/{who}", at, [f"key/{k}" for k in made] if revoke else []),
        ).fetchall()
        demoted += [str(row[0]) for row in rows]
        ended += [(str(user), int(old), True, False) for user, old in rows]
    if demoted and (conn.execute("SELECT count(*) FROM users WHERE role = 'admin'").fetchone() or (0,))[0] == 0:
        raise ApiRefused(
            409,
            f"this would also demote {', '.join(sorted(demoted))} (made with the logins it ends), leaving no admin"
            " user. Make another user admin first (`clavis-mcp team user role EMAIL admin`)",
        )
    return sorted(keys), sorted(demoted)


def _revoke_made_by(conn: psycopg.Connection[Any], email: str, *, revoke: bool, first_admin_key: bool) -> list[str]:
    """Inside the transaction that ends the user's logins: revoke the live keys they made, the keys
    made with those, and so on (only list them, unless ``revoke``); their names, sorted.

    Revoked then, rather than checked against their maker at each use: a revocation is durable
    and visible (the key list shows it, the answer and the audit name each key), a later promotion
    cannot revive a key minted with a login that was ended for cause, and a request made with a
    key still costs one lookup. ``first_admin_key=False`` leaves out the key the bootstrap printed
    (and what was made with it): the deployment's own key, made with the owner's credentials
    rather than with a login, which only a revocation or the first admin's removal ends."""
    made = (
        "WITH RECURSIVE made(name) AS (SELECT name FROM api_keys WHERE lower(created_by) = %s AND name <> %s"
        " UNION SELECT k.name FROM api_keys k JOIN made m ON k.created_by = 'key/' || m.name)"
    )
    live = "name IN (SELECT name FROM made) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
    args = (f"user/{email}", "" if first_admin_key else FIRST_ADMIN_KEY)
    if revoke:
        query = f"{made} UPDATE api_keys SET revoked_at = now() WHERE {live} RETURNING name"
    else:
        query = f"{made} SELECT name FROM api_keys WHERE {live}"
    return sorted(name for (name,) in conn.execute(query, args).fetchall())


def hold_admin(conn: psycopg.Connection[Any], caller: Principal) -> None:
    """Inside the transaction of an admin write: wait for a change of users under way, then refuse
    (401) if ``caller`` is no longer an admin in standing (:func:`_check_standing`). The route
    checked it when the headers came; a login may end while the body is still arriving."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_ADMINS_LOCK,))
    _check_standing(conn, caller)


def _check_standing(conn: psycopg.Connection[Any], caller: Principal) -> None:
    """401 if ``caller`` is gone (a removed user, a login that has ended since it was checked, a
    revoked or expired key) or no longer an admin, so that nothing is made or changed by someone
    whose removal, sign-out or new role or password has just ended everything they made. The
    caller holds ``_ADMINS_LOCK``, shared or not."""
    kind, _, name = caller.name.partition("/")
    if kind == "user":
        query = "SELECT 1 FROM users WHERE email = %s AND session_epoch = %s AND role = 'admin'"
        found = conn.execute(query, (name, caller.epoch)).fetchone()
    else:
        query = (
            "SELECT 1 FROM api_keys WHERE name = %s AND role = 'admin' AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > now())"
        )
        found = conn.execute(query, (name,)).fetchone()
    if found is None:
        raise ApiRefused(
            401,
            f"{caller.name} can no longer make keys or other admin changes (removed, signed out, role or password"
            " changed, or revoked): log in again or use another key",
        )


def change_user(
    conn: psycopg.Connection[Any],
    email: str,
    role: str | None = None,
    password: str | None = None,
    by: Principal | None = None,
) -> tuple[str, list[str], list[str]]:
    """Set a new role and/or password, and end every login of the user (the epoch moves on);
    with neither, only the latter. The keys made with their authority are revoked with those
    logins and the admin users made with them demoted (:func:`_end_made_by`). ``by`` is the admin
    who asks (None: the user signs themselves out). Returns the user's role now, the revoked keys'
    names and the demoted users."""
    if role is not None:
        _check_role(role)
    if password is not None:
        _check_password(password)
    email, hashed = email.lower(), _hasher.hash(password) if password is not None else None  # slow: unlocked
    with conn.transaction():
        current, epoch = _locked_user(conn, email, "demote" if role == "member" else None, by)
        conn.execute(
            "UPDATE users SET role = COALESCE(%s, role), password_hash = COALESCE(%s, password_hash),"
            " session_epoch = session_epoch + 1 WHERE email = %s",
            (role, hashed, email),
        )
        revoked, demoted = _end_made_by(conn, email, epoch, keep_keys=False, first_admin_key=False)
    return role or current, revoked, demoted


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokens:
    """Issue and check JWTs (EdDSA) whose key is the transit key ``jwt`` of this deployment."""

    def __init__(self, bao: Bao, transit: str, issuer: str, *, refetch_every: float = KEY_REFETCH_SECONDS) -> None:
        self._bao, self._transit, self._issuer = bao, transit, issuer
        self._public: dict[int, Ed25519PublicKey] = {}
        self._lock = threading.Lock()
        self._refetch_every, self._next_fetch = refetch_every, 0.0
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clavis-jwt-keys")
        self._users: Callable[[], psycopg.Connection[Any]] | None = None

    def check_users_in(self, connection: Callable[[], psycopg.Connection[Any]]) -> None:
        """Accept a token only while its user exists with the token's session epoch, and take the
        role from that row; ``connection`` gives the database connection to ask (reconnected if
        it broke). Until this is called only signature, issuer and expiry are checked: a replica
        calls it as it is built (team/replica.py)."""
        self._users = connection

    def issue(self, email: str, role: str, now: float | None = None, epoch: int = 0) -> str:
        now = time.time() if now is None else now
        claims = {"iss": self._issuer, "sub": email, "role": role, "iat": int(now), "exp": int(now) + TOKEN_TTL,
                  "epoch": epoch}  # fmt: skip
        # The kid is known only once transit has signed; sign with the latest version and name it.
        version = max(self._public_keys())
        header = {"alg": "EdDSA", "typ": "JWT", "kid": f"jwt:v{version}"}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signed_by, signature = self._bao.sign(self._transit, "jwt", signing_input.encode())
        if signed_by != version:  # rotated in between: sign again under the name of the new version
            header["kid"] = f"jwt:v{signed_by}"
            signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
            signed_by, signature = self._bao.sign(self._transit, "jwt", signing_input.encode())
        return f"{signing_input}.{_b64(signature)}"

    def principal(self, token: str, now: float | None = None) -> Principal | None:
        """The person a valid, unexpired token of ours names, if their login has not ended; None for
        anything else."""
        return self.check(token, now)[1]

    def check(self, token: str, now: float | None = None) -> tuple[dict[str, Any] | None, Principal | None]:
        """The token's claims if its signature, issuer and expiry are good, and its :meth:`principal`:
        one check serves both the answer and the wording of a refusal."""
        claims = self.claims(token, now)
        if claims is None:
            return None, None
        role = str(claims.get("role")) if self._users is None else self._current_role(claims)
        if role is None:
            return claims, None
        # A member uses services through the keys an admin scoped for them; their login alone uses none.
        return claims, Principal(f"user/{claims['sub']}", role, (ALL,) if role == "admin" else (), token_epoch(claims))

    def _current_role(self, claims: dict[str, Any]) -> str | None:
        """The role of the token's user if they exist with its epoch: one primary-key lookup."""
        assert self._users is not None
        email, epoch = claims.get("sub"), token_epoch(claims)
        if not isinstance(email, str) or epoch is None:
            return None
        query = "SELECT role FROM users WHERE email = %s AND session_epoch = %s"
        try:
            row = self._users().execute(query, (email, epoch)).fetchone()
        except psycopg.OperationalError:  # the server dropped the connection since the last request: once more
            row = self._users().execute(query, (email, epoch)).fetchone()
        return str(row[0]) if row else None

    def claims(self, token: str, now: float | None = None) -> dict[str, Any] | None:
        """The claims of a token of ours whose signature, issuer and expiry are good; None otherwise.
        Says nothing about whether its login has ended: :meth:`principal` does."""
        try:
            head, body, sig = token.split(".")
            header = json.loads(_unb64(head))
            claims = json.loads(_unb64(body))
            kid = header["kid"]
            if header.get("alg") != "EdDSA" or not kid.startswith("jwt:v"):
                return None
            key = self._key(int(kid.removeprefix("jwt:v")))
            if key is None:
                return None
            key.verify(_unb64(sig), f"{head}.{body}".encode())
        except (ValueError, KeyError, TypeError, AttributeError, InvalidSignature):
            return None
        now = time.time() if now is None else now
        if not isinstance(claims, dict) or claims.get("iss") != self._issuer or not isinstance(claims.get("sub"), str):
            return None
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            return None
        return claims

    def _key(self, version: int) -> Ed25519PublicKey | None:
        """The public key of ``version``. A version not seen yet is looked up in OpenBao only if it is
        newer than every known one (a rotation), at most once every ``refetch_every`` seconds, and
        a request waits at most KEY_FETCH_WAIT for it: anyone may send a token naming made-up
        versions, and this runs on the event loop."""
        key = self._public.get(version)
        if key is not None or version <= max(self._public, default=0):
            return key
        with self._lock:
            if time.monotonic() < self._next_fetch:
                return None
            self._next_fetch = time.monotonic() + self._refetch_every
        try:
            self._fetcher.submit(self._public_keys).result(timeout=KEY_FETCH_WAIT)
        except TimeoutError:  # the keys are kept when they come, for the next request
            return None
        return self._public.get(version)

    def _public_keys(self) -> dict[int, Ed25519PublicKey]:
        """Fetch without the lock and swap the dict in: :meth:`_key` takes the lock on the event loop,
        so a slow OpenBao must never hold it."""
        fetched = self._bao.public_keys(self._transit, "jwt")
        public = {v: Ed25519PublicKey.from_public_bytes(k) for v, k in fetched.items()}
        with self._lock:
            self._public = public
        return public


def client_network(address: str) -> str:
    """What a client is limited as: its IPv4 address, or its IPv6 /64 (a host usually holds a
    whole /64, so a single IPv6 address would be free to change)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def _lock_key(network: str) -> int:
    return int.from_bytes(hashlib.sha256(f"clavis-login:{network}".encode()).digest()[:8], "big", signed=True)


def _too_many(wait: float | None) -> ApiRefused:
    seconds = max(int(wait or FAILURE_WINDOW) + 1, 1)
    return ApiRefused(
        429,
        "too many failed logins from this network address; try again later",
        {"Retry-After": str(min(seconds, FAILURE_WINDOW))},
    )


def _reserve(conn: psycopg.Connection[Any], email: str, network: str) -> None:
    """Count this attempt as a failure before its password is checked, or refuse it (429): the count
    and the insert are one step for all replicas (an advisory lock on the network)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(network),))
        conn.execute(
            "DELETE FROM login_failures WHERE client = %s AND at <= now() - make_interval(secs => %s)",
            (network, FAILURE_WINDOW),
        )
        mine, total, mine_wait, total_wait = conn.execute(
            "SELECT count(*) FILTER (WHERE email = %s), count(*),"
            " extract(epoch FROM min(at) FILTER (WHERE email = %s) + make_interval(secs => %s) - now()),"
            " extract(epoch FROM min(at) + make_interval(secs => %s) - now())"
            " FROM login_failures WHERE client = %s",
            (email, email, FAILURE_WINDOW, FAILURE_WINDOW, network),
        ).fetchone() or (0, 0, None, None)
        if mine >= MAX_FAILURES:
            raise _too_many(mine_wait)
        if total >= MAX_NETWORK_FAILURES:
            raise _too_many(total_wait)
        conn.execute("INSERT INTO login_failures (email, client) VALUES (%s, %s)", (email, network))


def login(conn: psycopg.Connection[Any], tokens: Tokens, email: str, password: str, client: str) -> str:
    """A JWT for a correct address and password; 401 otherwise; 429, with no password check, once the
    client's network is over its limit for this account or for all accounts; 400 for an address no
    user can have."""
    _check_email(email)
    email, network = email.lower(), client_network(client)
    _reserve(conn, email, network)
    row = conn.execute("SELECT password_hash, role, session_epoch FROM users WHERE email = %s", (email,)).fetchone()
    try:
        _hasher.verify(row[0] if row else _DUMMY, password)
        ok = row is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None:
        raise ApiRefused(401, "wrong e-mail address or password")  # the reserved failure stays
    conn.execute("DELETE FROM login_failures WHERE email = %s AND client = %s", (email, network))
    return tokens.issue(email, row[1], epoch=row[2])
