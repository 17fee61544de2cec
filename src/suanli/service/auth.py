"""API tokens: random, shown once, stored as SHA-256 hashes; scopes admin > submit > read."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.service.db import ApiToken, QueueRow, Tenant, User

PREFIX = "sl_"
SCOPES = ("admin", "submit", "read", "node")
# ``node``: a node agent's token (register, heartbeat); it implies nothing else
IMPLIES = {"admin": {"admin", "submit", "read"}, "submit": {"submit", "read"}, "read": {"read"},
           "node": {"node"}}


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # tokens carry 256 random bits: a fast hash is enough (no dictionary to guess from)
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    token_id: int
    tenant_id: int
    tenant: str
    tenant_root: bool
    user_id: int
    user: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return any(scope in IMPLIES[s] for s in self.scopes)


def authenticate(session: Session, token: str) -> Principal | None:
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    h = hash_token(token)
    row = session.execute(
        select(ApiToken, Tenant, User)
        .join(Tenant, Tenant.id == ApiToken.tenant_id)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == h, ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    tok, tenant, user = row
    if not hmac.compare_digest(tok.token_hash, h):
        return None
    return Principal(tok.id, tenant.id, tenant.name, tenant.root, user.id, user.name,
                     frozenset(tok.scopes.split(",")))


def ensure_tenant(session: Session, name: str, root: bool = False) -> Tenant:
    t = session.scalar(select(Tenant).where(Tenant.name == name))
    if t is None:
        t = Tenant(name=name, root=root)
        session.add(t)
        session.flush()
    return t


def ensure_user(session: Session, tenant: Tenant, name: str) -> User:
    u = session.scalar(select(User).where(User.tenant_id == tenant.id, User.name == name))
    if u is None:
        u = User(tenant_id=tenant.id, name=name)
        session.add(u)
        session.flush()
    return u


def create_token(session: Session, tenant: Tenant, user: User, scopes: list[str],
                 name: str = "") -> tuple[ApiToken, str]:
    token = new_token()
    row = ApiToken(tenant_id=tenant.id, user_id=user.id, name=name,
                   token_hash=hash_token(token), prefix=token[:10],
                   scopes=",".join(sorted(set(scopes), key=SCOPES.index)))
    session.add(row)
    session.flush()
    return row, token


def bootstrap(session: Session) -> str | None:
    """First start: the root tenant ``default``, user ``admin`` with an admin token, and the
    ``default`` queue. Returns the new token (None when already bootstrapped)."""
    if session.scalar(select(QueueRow).where(QueueRow.name == "default")) is None:
        session.add(QueueRow(name="default", weight=1.0))
    if session.scalar(select(ApiToken.id).limit(1)) is not None:
        session.commit()
        return None
    tenant = ensure_tenant(session, "default", root=True)
    user = ensure_user(session, tenant, "admin")
    _, token = create_token(session, tenant, user, ["admin"], name="bootstrap")
    session.commit()
    return token
