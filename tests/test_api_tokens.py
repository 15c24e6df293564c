"""Personal API tokens: made in Settings and shown once, stored only as a hash, refused the moment
they are revoked, never replaced by a browser session; the API's error shape and rate limit."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from discux.api import tokens
from discux.extensions import db
from discux.ids import sha256_hex, utcnow
from discux.models import ApiToken, User
from tests.support.api_helpers import Api, error_of, issue_token

NEW_TOKEN = re.compile(r'id="new-api-token" type="text" readonly value="(dxk_[A-Za-z0-9_-]+)"')


def create_in_settings(client, csrf_token, name: str = "deploy bot"):
    return client.post("/settings/tokens", data={"name": name, "csrf_token": csrf_token()})


def token_rows(app, user) -> list[ApiToken]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id)))
        db.session.expunge_all()
        return rows


def test_settings_shows_a_new_token_once_and_stores_only_its_hash(app, client, csrf_token,
                                                                  login, make_user):
    user = make_user()
    login(user)
    response = create_in_settings(client, csrf_token)
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    raw = NEW_TOKEN.search(page).group(1)
    assert 'data-copy-target="new-api-token"' in page
    [row] = token_rows(app, user)
    assert row.name == "deploy bot"
    assert row.token_hash == sha256_hex(raw) and raw not in row.token_hash
    later = client.get("/settings").get_data(as_text=True)
    assert raw not in later and "deploy bot" in later
    assert Api(client, raw).get("/me").get_json()["id"] == user.id


def test_settings_lists_tokens_with_dates_and_a_confirmed_revoke(app, client, csrf_token,
                                                                 login, make_user):
    user = make_user()
    issue_token(app, user, "nightly export")
    login(user)
    page = client.get("/settings").get_data(as_text=True)
    section = page[page.index('id="api-tokens"'):page.index("<h2>Sessions</h2>")]
    assert "nightly export" in section and "never" in section and " UTC" in section
    assert 'data-confirm="Revoke the token' in section


def test_token_name_is_required(app, client, csrf_token, login, make_user):
    user = make_user()
    login(user)
    response = create_in_settings(client, csrf_token, name="   ")
    assert response.status_code == 422
    assert "Name the token" in response.get_data(as_text=True)
    assert NEW_TOKEN.search(response.get_data(as_text=True)) is None
    assert token_rows(app, user) == []


def test_revoking_in_settings_refuses_the_very_next_request(app, client, csrf_token, login,
                                                            make_user):
    user = make_user()
    raw = issue_token(app, user)
    api = Api(app.test_client(), raw)
    assert api.get("/me").status_code == 200
    login(user)
    [row] = token_rows(app, user)
    response = client.post(f"/settings/tokens/{row.id}/revoke", data={"csrf_token": csrf_token()})
    assert response.status_code == 303
    refused = api.get("/me")
    assert refused.status_code == 401
    assert error_of(refused)["code"] == "invalid_token"


def test_revocation_holds_even_inside_one_long_app_context(app, client, make_user):
    user = make_user()
    raw = issue_token(app, user)
    api = Api(client, raw)
    with app.app_context():  # requests made here share the app context (and its `g`)
        assert api.get("/me").status_code == 200
        [row] = db.session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id))
        tokens.revoke_token(db.session.get(User, user.id), row.id)
        assert api.get("/me").status_code == 401


def test_nobody_revokes_another_users_token(app, client, csrf_token, login, make_user):
    owner, other = make_user(), make_user()
    raw = issue_token(app, owner)
    [row] = token_rows(app, owner)
    login(other)
    response = client.post(f"/settings/tokens/{row.id}/revoke", data={"csrf_token": csrf_token()})
    assert response.status_code == 404
    assert Api(client, raw).get("/me").status_code == 200


def test_a_session_cookie_does_not_authenticate_the_api(client, login, make_user):
    login(make_user())
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_token"


def test_other_authorization_schemes_are_not_tokens(app, client, make_user):
    raw = issue_token(app, make_user())
    for header in (f"Basic {raw}", raw, "Bearer", f"Token {raw}"):
        response = client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_last_used_is_written_at_most_once_a_minute(app, client, make_user):
    user = make_user()
    api = Api(client, issue_token(app, user))
    assert token_rows(app, user)[0].last_used_at is None
    api.get("/me")
    first = token_rows(app, user)[0].last_used_at
    assert first is not None
    api.get("/me")
    assert token_rows(app, user)[0].last_used_at == first
    with app.app_context():
        db.session.execute(sa.update(ApiToken).values(last_used_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
    api.get("/me")
    assert token_rows(app, user)[0].last_used_at > first - timedelta(seconds=1)


def test_tokens_look_like_dxk_and_are_distinct(app, make_user):
    user = make_user()
    raws = {issue_token(app, user, f"bot {n}") for n in range(3)}
    assert len(raws) == 3
    assert all(raw.startswith("dxk_") and len(raw) >= 4 + 43 for raw in raws)


def test_a_user_holds_a_bounded_number_of_tokens(app, make_user):
    user = make_user()
    with app.app_context():
        person = db.session.get(User, user.id)
        for n in range(tokens.TOKENS_PER_USER):
            tokens.create_token(person, f"bot {n}")
        try:
            tokens.create_token(person, "one too many")
        except tokens.DiscuxError as error:
            assert error.field == "name" and "Revoke one" in error.message
        else:
            raise AssertionError("the token limit was not enforced")
        assert len(tokens.tokens_of(person)) == tokens.TOKENS_PER_USER


# ---- the error shape for what never reaches a route ----

def test_unknown_api_path_is_a_json_404(app, client, make_user):
    response = Api(client, issue_token(app, make_user())).get("/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_wrong_method_is_a_json_405(app, client, make_user):
    response = Api(client, issue_token(app, make_user())).request("PUT", "/agents")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_a_body_over_1_mb_is_a_json_413(app, client, make_user):
    api = Api(client, issue_token(app, make_user()))
    response = api.post("/rooms", data=b"{" + b" " * (1024 * 1024 + 1) + b"}",
                        headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"


def test_responses_are_not_cached(app, client, make_user):
    response = Api(client, issue_token(app, make_user())).get("/me")
    assert response.headers["Cache-Control"] == "no-store"


# ---- rate limit ----

def test_the_api_is_rate_limited_per_token(make_app, make_user):
    app = make_app(RATELIMIT_ENABLED=True)
    client = app.test_client()
    busy = Api(client, issue_token(app, make_user()))
    statuses = [busy.get("/me").status_code for _ in range(121)]
    assert statuses[:120] == [200] * 120
    assert statuses[120] == 429
    refused = busy.get("/agents")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    error = error_of(refused)
    assert error["code"] == "too_many_requests" and "120 per 1 minute" in error["message"]
    # Another token has its own budget.
    assert Api(client, issue_token(app, make_user())).get("/me").status_code == 200
