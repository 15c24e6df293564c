"""Sign-in through OAuth/OIDC providers, run through Authlib's real flow against a local
provider: authorize → callback → token → userinfo."""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa

from discux.auth import mail
from discux.auth.accounts import OAuthIdentity, user_for_oauth_identity
from discux.auth.sessions import COOKIE_NAME
from discux.extensions import db
from discux.models import Account, ApiToken, Session, User
from tests.support import factories
from tests.support.email_links import open_sign_in_link
from tests.support.oauth_provider import OAuthTestProvider


@pytest.fixture(scope="module")
def provider():
    provider = OAuthTestProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def oauth_app(make_app, provider):
    provider.deny_next = False
    provider.next_user = {"sub": "u-1", "email": "ada@example.com", "email_verified": True,
                          "name": "Ada Lovelace", "picture": None, "login": "ada"}
    app = make_app(
        DISCUX_OIDC_CLIENT_ID=provider.client_id,
        DISCUX_OIDC_CLIENT_SECRET=provider.client_secret,
        DISCUX_OIDC_ISSUER=provider.issuer,
        DISCUX_OIDC_NAME="Acme SSO",
        DISCUX_GITHUB_CLIENT_ID=provider.client_id,
        DISCUX_GITHUB_CLIENT_SECRET=provider.client_secret,
        DISCUX_GITHUB_OAUTH_BASE=provider.issuer,
        DISCUX_GITHUB_API_BASE=provider.issuer + "/api/",
    )
    yield app
    with app.app_context():
        from tests.conftest import empty_tables

        empty_tables(db.engine)


def run_flow(client, provider_key: str, next_url: str | None = None, tamper_state=False):
    """Walk the browser's part of the flow by hand; returns the app's final response."""
    start = client.get(f"/login/{provider_key}" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302
    at_provider = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["Location"])
    query = back.query
    if tamper_state:
        params = parse_qs(query)
        query = f"code={params['code'][0]}&state=forged"
    return client.get(f"{back.path}?{query}")


def accounts(app):
    with app.app_context():
        return db.session.scalars(sa.select(Account)).all()


def users(app):
    with app.app_context():
        return db.session.scalars(sa.select(User)).all()


def test_login_page_offers_only_configured_providers(oauth_app, client):
    page = oauth_app.test_client().get("/login").get_data(as_text=True)
    assert "Continue with Acme SSO" in page
    assert "Continue with GitHub" in page
    assert "Continue with Google" not in page
    assert "Continue with" not in client.get("/login").get_data(as_text=True)


def test_oidc_first_sign_in_creates_user_and_account(oauth_app, provider):
    client = oauth_app.test_client()
    response = run_flow(client, "oidc", next_url="/settings")
    assert response.status_code == 303
    assert response.headers["Location"] == "/settings"
    assert "Ada Lovelace" in client.get("/").get_data(as_text=True)
    [user] = users(oauth_app)
    assert user.email == "ada@example.com" and user.email_verified is not None
    [account] = accounts(oauth_app)
    assert (account.provider, account.provider_account_id) == ("oidc", "u-1")
    assert account.access_token is None and account.id_token is None  # nothing kept we don't need
    sent = provider.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
    assert sent["state"] and sent["nonce"]


def test_second_sign_in_reuses_the_linked_user(oauth_app):
    run_flow(oauth_app.test_client(), "oidc")
    run_flow(oauth_app.test_client(), "oidc")
    assert len(users(oauth_app)) == 1
    assert len(accounts(oauth_app)) == 1


def test_verified_email_links_to_the_existing_user(oauth_app, make_user):
    existing = make_user(email="ada@example.com", name="Ada")
    client = oauth_app.test_client()
    assert run_flow(client, "oidc").status_code == 303
    assert [u.id for u in users(oauth_app)] == [existing.id]
    assert accounts(oauth_app)[0].user_id == existing.id


# Some providers send the claim as a string: "false" must not read as verified.
@pytest.mark.parametrize("unverified", [False, "false"])
def test_unverified_email_never_takes_over_an_account(oauth_app, provider, make_user, unverified):
    make_user(email="ada@example.com")
    provider.next_user = {**provider.next_user, "email_verified": unverified}
    client = oauth_app.test_client()
    response = run_flow(client, "oidc")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "has not verified that address" in page
    assert accounts(oauth_app) == []
    assert client.get("/settings").status_code == 302


def test_unverified_email_first_sign_in_creates_nothing(oauth_app, provider):
    provider.next_user = {**provider.next_user, "email_verified": False}
    client = oauth_app.test_client()
    response = run_flow(client, "oidc")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Acme SSO has not verified that address (ada@example.com)" in page
    assert "Verify the address there" in page and "email link" in page
    assert users(oauth_app) == [] and accounts(oauth_app) == []
    assert client.get("/settings").status_code == 302


def test_unverified_github_email_creates_nothing(oauth_app, provider):
    provider.next_user = {**provider.next_user, "sub": "77", "email_verified": False}
    client = oauth_app.test_client()
    page = client.get(run_flow(client, "github").headers["Location"]).get_data(as_text=True)
    assert "GitHub has not verified that address" in page
    assert users(oauth_app) == [] and accounts(oauth_app) == []


def test_a_linked_identity_still_signs_in_when_its_email_is_unverified(oauth_app, provider):
    assert run_flow(oauth_app.test_client(), "oidc").status_code == 303
    provider.next_user = {**provider.next_user, "email_verified": False}
    client = oauth_app.test_client()
    assert run_flow(client, "oidc").status_code == 303
    assert "Ada Lovelace" in client.get("/").get_data(as_text=True)
    assert len(users(oauth_app)) == 1 and len(accounts(oauth_app)) == 1


def legacy_takeover(app, email="ada@example.com", sub="u-1"):
    """What earlier versions let an attacker leave behind: a user made from an OIDC identity
    whose email was never verified, linked to it, with a session and an API token."""
    with app.app_context():
        user = factories.create_user(email=email, name="Mallory", verified=False)
        db.session.add(Account(user_id=user.id, type="oidc", provider="oidc",
                               provider_account_id=sub))
        db.session.commit()
        raw_session = factories.create_session_token(user.id)
        from discux.api import tokens

        tokens.create_token(user, "mallory's script")
        return user.id, raw_session


def test_owner_signing_in_by_link_does_not_inherit_the_attackers_identity(
        oauth_app, provider, caplog):
    user_id, attacker_session = legacy_takeover(oauth_app)
    attacker = oauth_app.test_client()
    attacker.set_cookie(COOKIE_NAME, attacker_session, domain="localhost")
    assert attacker.get("/settings").status_code == 200

    owner = oauth_app.test_client()
    page = owner.get("/").get_data(as_text=True)
    csrf = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    with caplog.at_level(logging.WARNING):
        owner.post("/login/email", data={"email": "ada@example.com", "csrf_token": csrf})
        assert mail.outbox(oauth_app).wait_idle()
    link = re.search(r"http://localhost(/login/email/verify\S+)", caplog.text).group(1)
    assert open_sign_in_link(owner, link).status_code == 303
    assert owner.get("/settings").status_code == 200
    with oauth_app.app_context():
        user = db.session.get(User, user_id)
        assert user.email_verified is not None
        assert db.session.scalars(sa.select(Account)).all() == []
        assert db.session.scalars(sa.select(ApiToken)).all() == []
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Session)) == 1
    assert attacker.get("/settings").status_code == 302  # the attacker's session is gone
    # The attacker's identity, still unverified, no longer reaches the account.
    provider.next_user = {**provider.next_user, "email_verified": False}
    again = oauth_app.test_client()
    response = run_flow(again, "oidc")
    assert "has not verified that address" in again.get(response.headers["Location"]).get_data(
        as_text=True)
    assert again.get("/settings").status_code == 302


def test_verified_sign_in_to_a_legacy_account_drops_the_unverified_link(oauth_app, provider):
    user_id, _ = legacy_takeover(oauth_app, sub="mallory")
    client = oauth_app.test_client()
    assert run_flow(client, "oidc").status_code == 303  # the real owner, verified, sub u-1
    [account] = accounts(oauth_app)
    assert (account.user_id, account.provider_account_id) == (user_id, "u-1")


@pytest.mark.parametrize("round_", range(3))
def test_two_first_sign_ins_of_one_identity_at_once_make_one_user(oauth_app, round_):
    identity = OAuthIdentity(provider="oidc", account_id=f"race-{round_}",
                             email=f"race{round_}@example.com", email_verified=True,
                             name="Racer", avatar_url=None)
    start = threading.Barrier(2)
    results: list[str] = []
    errors: list[BaseException] = []

    def sign_in() -> None:
        with oauth_app.app_context():
            start.wait(timeout=10)
            try:
                results.append(user_for_oauth_identity(identity).id)
            except BaseException as error:  # reported below, with its type
                errors.append(error)

    threads = [threading.Thread(target=sign_in) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == 2 and results[0] == results[1]
    assert [u.id for u in users(oauth_app)] == [results[0]]
    assert len(accounts(oauth_app)) == 1


def test_forged_state_is_refused(oauth_app):
    client = oauth_app.test_client()
    response = run_flow(client, "oidc", tamper_state=True)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Sign-in with Acme SSO failed (mismatching_state)" in page
    assert users(oauth_app) == []


def test_denied_consent_says_cancelled(oauth_app, provider):
    provider.deny_next = True
    client = oauth_app.test_client()
    response = run_flow(client, "oidc")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Sign-in with Acme SSO was cancelled." in page
    assert users(oauth_app) == []


def test_github_sign_in_uses_the_primary_verified_email(oauth_app, provider):
    provider.next_user = {**provider.next_user, "sub": "4242", "email": "gh@example.com"}
    client = oauth_app.test_client()
    assert run_flow(client, "github").status_code == 303
    [user] = users(oauth_app)
    assert user.email == "gh@example.com"
    [account] = accounts(oauth_app)
    assert (account.provider, account.provider_account_id) == ("github", "4242")
    assert provider.authorize_requests[-1]["code_challenge_method"] == "S256"


def test_unconfigured_provider_is_not_found(client):
    assert client.get("/login/github").status_code == 404
    assert client.get("/auth/oidc/callback?code=x&state=y").status_code == 404
