"""Application-level encryption of personal data at rest (Fernet: AES-128-CBC + HMAC-SHA256).

Keys come from ``NOTIFY_DATA_KEYS``, oldest first: the newest encrypts, every listed key
decrypts, and :func:`rotate_token` re-encrypts under the newest. Each process installs its keys
once at start (:func:`install`), before the first query; the column types in
``notify.models.base`` use them.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_keyring: MultiFernet | None = None


class KeysNotInstalledError(RuntimeError):
    pass


class UndecryptableError(ValueError):
    """A stored value that none of the configured keys can decrypt."""


MISSING_KEY = (
    "no configured data key decrypts stored personal data (its key is missing, or the value is"
    " damaged)"
)


def missing_key(error: BaseException) -> bool:
    """Whether ``error`` is an :class:`UndecryptableError`: raised as it is, kept as ``orig`` by
    the error that wraps it (SQLAlchemy's ``StatementError``, for a value read while a statement
    ran), or the one error of a group."""
    if isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        return missing_key(error.exceptions[0])
    return isinstance(error, UndecryptableError) or isinstance(
        getattr(error, "orig", None), UndecryptableError
    )


class UnencryptableError(ValueError):
    """A value that is not valid Unicode text (a lone surrogate), so it has no UTF-8 form to
    encrypt. Input checks refuse such values first; this is the last line of defence."""


def _fernet(key: str) -> Fernet:
    """A Fernet for ``key``: a Fernet key as it is, any other secret through SHA-256."""
    try:
        return Fernet(key.encode())
    except ValueError:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def keyring(keys: list[str]) -> MultiFernet:
    if not keys:
        raise ValueError("at least one data key is needed")
    return MultiFernet([_fernet(key) for key in reversed(keys)])  # MultiFernet: newest first


def install(keys: list[str]) -> None:
    global _keyring  # one key ring per process, set at start
    _keyring = keyring(keys)


def _ring() -> MultiFernet:
    if _keyring is None:
        raise KeysNotInstalledError("notify.crypto.install() was not called at process start")
    return _keyring


def encrypt(plain: str) -> str:
    """``plain`` encrypted under the newest key; :class:`UnencryptableError` (never a
    ``UnicodeEncodeError``) if it holds a lone surrogate."""
    try:
        data = plain.encode("utf-8")
    except UnicodeEncodeError:
        raise UnencryptableError("the value is not valid Unicode text (a lone surrogate)") from None
    return _ring().encrypt(data).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _ring().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise UndecryptableError("no configured data key decrypts this value") from None


def rotate_token(token: str) -> str:
    """The same plaintext, encrypted under the newest key."""
    try:
        return _ring().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise UndecryptableError("no configured data key decrypts this value") from None
