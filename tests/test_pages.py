"""Layout, error pages and the security headers every page carries."""

from __future__ import annotations

import re

import pytest

from discux.auth.sessions import COOKIE_NAME


def test_pages_have_real_titles(client, make_user, login):
    assert "<title>Sign in · Discux</title>" in client.get("/login").get_data(as_text=True)
    login(make_user(name="Ana"))
    assert "<title>Dashboard · Discux</title>" in client.get("/").get_data(as_text=True)
    assert "<title>Settings · Discux</title>" in client.get("/settings").get_data(as_text=True)


def test_dashboard_has_empty_states(client, make_user, login):
    login(make_user())
    page = client.get("/").get_data(as_text=True)
    assert "You are not in any room yet." in page
    assert "Nothing yet." in page


def test_unknown_page_is_a_styled_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "<title>Not found · Discux</title>" in page
    assert "Back to Discux" in page


def test_json_clients_get_json_errors(client):
    response = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json == {"error": {"code": "not_found", "message": response.json["error"][
        "message"]}}
    assert "nothing here" in response.json["error"]["message"]


def test_oversized_request_body_is_refused(client, csrf_token):
    response = client.post("/login/email", data={"email": "a" * (1024 * 1024 + 10),
                                                 "csrf_token": csrf_token()})
    assert response.status_code == 413
    assert "1 MB" in response.get_data(as_text=True)


def test_a_visitor_who_hangs_up_mid_request_is_one_quiet_log_line(make_app, caplog):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/hang-up")
    def hang_up():
        raise BrokenPipeError(32, "Broken pipe")  # what writing to a closed socket raises

    assert app.test_client().get("/hang-up").status_code == 400
    [line] = [r for r in caplog.records if "client left" in r.getMessage()]
    assert line.exc_info is None  # no traceback: nothing on the server went wrong


@pytest.mark.allows_traceback
def test_server_error_page_rolls_back_and_explains(make_app):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong" in page and "kaboom" not in page


def csp_directives(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: " ".join(part.split()[1:])
            for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/", "/login", "/no/such/page"])
def test_security_headers(client, path):
    response = client.get(path)
    directives = csp_directives(response)
    # The app's own origin only: nothing inline, no remote images, forms post here only.
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert directives["connect-src"] == "'self'"
    assert directives["form-action"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain http in demo mode
    assert "HX-Request" in response.headers["Vary"]


def test_pages_with_a_secret_in_the_url_never_send_it_as_referrer(client):
    for path in ("/invite/not-a-real-token", "/login/email/verify?email=a@b.co&token=secret"):
        response = client.get(path)
        # The origin alone, not nothing: over https the page's form needs a same-site Referer.
        assert response.headers["Referrer-Policy"] == "strict-origin"


@pytest.mark.usefixtures("app")  # empties the tables afterwards
def test_https_site_sends_hsts_and_secure_cookies(make_app):
    site = "https://discux.example.org"
    app = make_app(DISCUX_BASE_URL=site)
    client = app.test_client()
    page = client.get("/login", base_url=site)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    token = re.search(r'"X-CSRFToken": "([^"]+)"', page.get_data(as_text=True)).group(1)
    signed_in = client.post("/login/demo", base_url=site, headers={"Referer": f"{site}/login"},
                            data={"email": "ana@example.com", "csrf_token": token})
    assert signed_in.status_code == 303
    cookies = page.headers.getlist("Set-Cookie") + signed_in.headers.getlist("Set-Cookie")
    assert {c.split("=")[0] for c in cookies} >= {"session", COOKIE_NAME}
    assert all("; Secure" in cookie for cookie in cookies)


def test_pages_carry_no_inline_script(client, make_user, login):
    login(make_user())
    for path in ("/", "/settings"):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert not re.search(r"\son[a-z]+=", html)


def test_static_assets_are_vendored_not_from_a_cdn(client):
    html = client.get("/login").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets and all(a.startswith("/static/") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200
