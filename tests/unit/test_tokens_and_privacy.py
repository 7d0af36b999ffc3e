"""Unit tests for notify.message.tokens, notify.message.links and notify.masking (pure)."""

from __future__ import annotations

import base64
import json
import os
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer

from notify.categories import UnknownCategoryError
from notify.config import Settings
from notify.masking import mask_email
from notify.message import links
from notify.message.tokens import (
    PREFERENCES_SALT,
    UNSUBSCRIBE_SALT,
    EssentialCategoryError,
    preferences_token,
    unsubscribe_token,
)
from notify.models.recipients import new_public_id

KEYS = ["k1-0f9e8d7c6b5a49382716f5e4d3c2b1a0"]
ROTATED_KEYS = [*KEYS, "k2-a0b1c2d3e4f5061728394a5b6c7d8e9f"]
PUBLIC_ID = "q3Vx9sLmPz0aT7wE"  # shaped like secrets.token_urlsafe(12)
LONGEST_PUBLIC_ID = "Z" * 32  # recipients.public_id is a String(32)
ONE_YEAR = 365 * 24 * 3600

url_safe_ids = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=1,
    max_size=32,
)


def decoded_payload(token: str) -> object:
    """Read a token the way anyone holding it can: base64url, then zlib if it starts with '.'."""
    compressed = token.startswith(".")
    body = token[1:] if compressed else token
    first = body.split(".")[0]
    data = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4))
    if compressed:
        data = zlib.decompress(data)
    return json.loads(data)


def unsubscribe_serializer(keys: list[str]) -> URLSafeSerializer:
    return URLSafeSerializer(keys, salt=UNSUBSCRIBE_SALT)


def preferences_serializer(keys: list[str]) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(keys, salt=PREFERENCES_SALT)


@pytest.fixture
def settings(monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith("NOTIFY_"):
            monkeypatch.delenv(name)
    return Settings(public_url="https://notify.example.com", secret_keys=",".join(ROTATED_KEYS))


# --- essential categories --------------------------------------------------------------------


@pytest.mark.parametrize("category", ["security", "admin"])
def test_no_unsubscribe_token_can_be_made_for_an_essential_category(category):
    with pytest.raises(EssentialCategoryError):
        unsubscribe_token(KEYS, PUBLIC_ID, category)


@pytest.mark.parametrize("category", ["security", "admin"])
def test_no_unsubscribe_url_can_be_made_for_an_essential_category(settings, category):
    with pytest.raises(EssentialCategoryError):
        links.unsubscribe_url(settings, PUBLIC_ID, category)


def test_an_unknown_category_gets_no_unsubscribe_token():
    with pytest.raises(UnknownCategoryError):
        unsubscribe_token(KEYS, PUBLIC_ID, "everything")


# --- payloads --------------------------------------------------------------------------------


def test_an_unsubscribe_token_holds_only_the_public_id_and_the_category():
    token = unsubscribe_token(KEYS, PUBLIC_ID, "product_updates")

    assert decoded_payload(token) == [PUBLIC_ID, "product_updates"]


@given(public_id=url_safe_ids)
def test_a_token_payload_never_contains_an_at_sign_for_any_public_id(public_id):
    for token in (
        unsubscribe_token(KEYS, public_id, "product_updates"),
        preferences_token(KEYS, public_id),
    ):
        payload = json.dumps(decoded_payload(token))
        assert "@" not in payload
        assert "@" not in token


def test_a_token_built_from_a_real_public_id_carries_no_address(settings):
    public_id = new_public_id()
    url = links.unsubscribe_url(settings, public_id, "product_updates")
    token = url.rsplit("/", 1)[-1]

    payload = decoded_payload(token)
    assert payload == [public_id, "product_updates"]
    assert "@" not in json.dumps(payload)


def test_the_payload_decoded_by_hand_matches_what_itsdangerous_reads_unsafely():
    token = unsubscribe_token(KEYS, PUBLIC_ID, "product_updates")

    valid, payload = unsubscribe_serializer(["some-other-key"]).loads_unsafe(token)

    assert valid is False  # wrong key: unverified, yet readable by anyone
    assert payload == decoded_payload(token)


# --- URLs ------------------------------------------------------------------------------------


def test_the_full_unsubscribe_url_with_the_longest_public_id_is_under_200_characters(settings):
    url = links.unsubscribe_url(settings, LONGEST_PUBLIC_ID, "product_updates")

    assert url.startswith("https://notify.example.com/u/")
    assert len(url) < 200


def test_the_preferences_url_is_absolute_https_and_short(settings):
    url = links.preferences_url(settings, LONGEST_PUBLIC_ID)

    assert url.startswith("https://notify.example.com/preferences/")
    assert len(url) < 200


def test_a_url_token_verifies_under_the_settings_keys(settings):
    token = links.unsubscribe_url(settings, PUBLIC_ID, "product_updates").rsplit("/", 1)[-1]

    assert unsubscribe_serializer(settings.secret_key_list).loads(token) == [
        PUBLIC_ID,
        "product_updates",
    ]


# --- rotation --------------------------------------------------------------------------------


def test_an_unsubscribe_token_signed_with_the_old_key_verifies_after_rotation():
    token = unsubscribe_token(["old"], PUBLIC_ID, "product_updates")

    assert unsubscribe_serializer(["old", "new"]).loads(token) == [PUBLIC_ID, "product_updates"]


def test_a_token_signed_after_rotation_uses_the_newest_key():
    token = unsubscribe_token(["old", "new"], PUBLIC_ID, "product_updates")

    assert unsubscribe_serializer(["new"]).loads(token) == [PUBLIC_ID, "product_updates"]
    with pytest.raises(BadData):
        unsubscribe_serializer(["old"]).loads(token)


def test_a_preferences_token_signed_with_the_old_key_verifies_after_rotation():
    token = preferences_token(["old"], PUBLIC_ID)

    assert preferences_serializer(["old", "new"]).loads(token, max_age=ONE_YEAR) == PUBLIC_ID


def test_a_token_signed_with_an_unknown_key_is_refused():
    token = unsubscribe_token(["stolen"], PUBLIC_ID, "product_updates")

    with pytest.raises(BadData):
        unsubscribe_serializer(["old", "new"]).loads(token)


# --- salts and tampering ---------------------------------------------------------------------


def test_an_unsubscribe_token_does_not_load_as_a_preferences_token():
    token = unsubscribe_token(KEYS, PUBLIC_ID, "product_updates")

    with pytest.raises(BadData):
        preferences_serializer(KEYS).loads(token, max_age=ONE_YEAR)
    with pytest.raises(BadData):
        URLSafeSerializer(KEYS, salt=PREFERENCES_SALT).loads(token)


def test_a_preferences_token_does_not_load_as_an_unsubscribe_token():
    token = preferences_token(KEYS, PUBLIC_ID)

    with pytest.raises(BadData):
        unsubscribe_serializer(KEYS).loads(token)


def test_the_two_purposes_use_different_non_default_salts():
    assert UNSUBSCRIBE_SALT != PREFERENCES_SALT
    token = unsubscribe_token(KEYS, PUBLIC_ID, "product_updates")

    with pytest.raises(BadData):
        URLSafeSerializer(KEYS).loads(token)  # the library's default salt


def flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def test_changing_one_character_of_the_payload_or_the_signature_is_refused():
    token = unsubscribe_token(KEYS, PUBLIC_ID, "product_updates")
    payload_end = token.rindex(".")
    tampered = [
        flip(token, payload_end // 2),  # inside the payload
        flip(token, payload_end + 1 + (len(token) - payload_end - 1) // 2),  # inside the signature
    ]

    for bad in tampered:
        assert bad != token
        with pytest.raises(BadData):
            unsubscribe_serializer(KEYS).loads(bad)


@given(public_id=url_safe_ids)
def test_every_unsubscribe_token_round_trips_to_its_public_id_and_category(public_id):
    token = unsubscribe_token(ROTATED_KEYS, public_id, "product_updates")

    assert unsubscribe_serializer(ROTATED_KEYS).loads(token) == [public_id, "product_updates"]


def test_the_same_recipient_and_category_always_give_the_same_unsubscribe_token():
    # Unsubscribe tokens carry no time and no nonce: they never expire and are never used up.
    first = unsubscribe_token(KEYS, PUBLIC_ID, "product_updates")
    second = unsubscribe_token(KEYS, PUBLIC_ID, "product_updates")

    assert first == second


# --- mask_email ------------------------------------------------------------------------------


def test_mask_email_keeps_the_first_letter_and_the_domain():
    assert mask_email("ada@example.com") == "a***@example.com"


@pytest.mark.parametrize("garbage", ["", "ada", "@", "ada@", "@example.com", "not an address"])
def test_mask_email_turns_anything_unparsable_into_three_stars(garbage):
    assert mask_email(garbage) == "***"


@given(address=st.emails())
def test_mask_email_never_shows_more_than_the_first_character_of_the_local_part(address):
    local, _, domain = address.rpartition("@")

    masked = mask_email(address)

    assert masked.endswith("@" + domain)
    shown_local = masked[: -len("@" + domain)]
    assert shown_local == local[0] + "***"
    if len(local) > 1:
        assert address not in masked


@given(value=st.text().filter(lambda text: "@" not in text))
def test_mask_email_of_any_text_without_an_at_sign_is_three_stars(value):
    assert mask_email(value) == "***"


def test_a_campaigns_unsubscribe_link_names_the_campaign_and_older_links_still_work() -> None:
    from itsdangerous import URLSafeSerializer

    from notify.message.tokens import UNSUBSCRIBE_SALT, read_unsubscribe_token

    named = read_unsubscribe_token(KEYS, unsubscribe_token(KEYS, PUBLIC_ID, "product_updates", 42))
    assert named == (PUBLIC_ID, "product_updates", 42)
    plain = read_unsubscribe_token(KEYS, unsubscribe_token(KEYS, PUBLIC_ID, "product_updates"))
    assert plain == (PUBLIC_ID, "product_updates", None)
    signer = URLSafeSerializer(KEYS, salt=UNSUBSCRIBE_SALT)
    for odd in (
        [PUBLIC_ID, "product_updates", "42"],
        [PUBLIC_ID, "product_updates", True],
        [PUBLIC_ID, "product_updates", 0],
        [PUBLIC_ID, "product_updates", 1, 2],
    ):
        assert read_unsubscribe_token(KEYS, str(signer.dumps(odd))) is None
