"""In-process OAuth2 / OpenID Connect provider for tests.

Serves two flavours on one loopback port so the app's real Authlib clients can
run their full flow (authorize redirect -> callback -> token -> userinfo):

* OIDC / Google-like: discovery, ``/authorize``, ``/token``, ``/userinfo``, ``/jwks``.
* GitHub-like: ``/login/oauth/authorize``, ``/login/oauth/access_token``,
  ``/api/user``, ``/api/user/emails`` (point the client's base URLs here).

Consent is automatic; set ``next_user`` / ``deny_next`` to script the outcome and
inspect ``authorize_requests`` / ``token_requests`` to assert on what was sent.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Flask, Response, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

DEFAULT_USER: dict[str, Any] = {
    "sub": "u-1",
    "email": "ada@example.test",
    "email_verified": True,
    "name": "Ada Lovelace",
    "picture": None,
    "login": "ada",
}


@dataclass(frozen=True)
class _Grant:
    """What an authorization code was issued for."""

    client_id: str
    user: dict[str, Any]
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    scope: str


class _OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class _QuietHandler(WSGIRequestHandler):
    # Per-request access logs only add noise to test output; errors still log.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _add_query(url: str, params: dict[str, str]) -> str:
    # Keep any query the client put in its redirect_uri (RFC 6749 §3.1.2).
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class OAuthTestProvider:
    def __init__(
        self, client_id: str = "discux-test", client_secret: str = "s3cret"
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.next_user: dict[str, Any] = copy.deepcopy(DEFAULT_USER)
        self.deny_next = False
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self._codes: dict[str, _Grant] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        # Handlers run on server threads while tests mutate state from the main one.
        self._lock = threading.Lock()
        self._key = RSAKey.generate_key(
            2048,
            parameters={
                "kid": f"test-{secrets.token_hex(4)}",
                "use": "sig",
                "alg": "RS256",
            },
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._app = self._build_app()

    # -- lifecycle ---------------------------------------------------------

    @property
    def issuer(self) -> str:
        if self._server is None:
            raise RuntimeError("OAuthTestProvider.start() has not been called")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._server = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="oauth-test-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- flows -------------------------------------------------------------

    def _authorize(self) -> Response:
        params = request.args.to_dict()
        with self._lock:
            self.authorize_requests.append(params)
        # Errors are returned to the caller (not redirected) so a broken client
        # fails loudly in tests instead of bouncing around.
        if params.get("client_id") != self.client_id:
            raise _OAuthError("invalid_client", "unknown client_id")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            raise _OAuthError("invalid_request", "redirect_uri is required")
        if params.get("response_type") != "code":
            raise _OAuthError("unsupported_response_type", "only response_type=code")
        state = params.get("state")
        if not state:
            raise _OAuthError("invalid_request", "state is required")
        challenge = params.get("code_challenge")
        if challenge and params.get("code_challenge_method") != "S256":
            raise _OAuthError("invalid_request", "code_challenge_method must be S256")

        with self._lock:
            if self.deny_next:
                self.deny_next = False
                denied = {
                    "error": "access_denied",
                    "error_description": "The user denied the request",
                    "state": state,
                }
                return redirect(_add_query(redirect_uri, denied))
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Grant(
                client_id=self.client_id,
                user=copy.deepcopy(self.next_user),
                redirect_uri=redirect_uri,
                nonce=params.get("nonce"),
                code_challenge=challenge,
                scope=params.get("scope", ""),
            )
        return redirect(_add_query(redirect_uri, {"code": code, "state": state}))

    def _exchange_code(self, *, issue_id_token: bool) -> dict[str, Any]:
        form = request.form.to_dict()
        with self._lock:
            self.token_requests.append(form)
        self._authenticate_client(form)
        if form.get("grant_type") != "authorization_code":
            raise _OAuthError("unsupported_grant_type", "only authorization_code")

        with self._lock:
            # Pop first: a code is consumed even by a failed attempt (single use).
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.client_id != self.client_id:
            raise _OAuthError("invalid_grant", "unknown or already used code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise _OAuthError("invalid_grant", "redirect_uri mismatch")
        verifier = form.get("code_verifier")
        if grant.code_challenge is not None:
            expected = _b64url(hashlib.sha256((verifier or "").encode()).digest())
            if not verifier or not hmac.compare_digest(expected, grant.code_challenge):
                raise _OAuthError("invalid_grant", "PKCE verification failed")
        elif verifier:
            # RFC 9700 §2.1.1: verifier without a stored challenge = PKCE downgrade.
            raise _OAuthError(
                "invalid_grant", "code_verifier sent but no code_challenge"
            )

        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[access_token] = grant.user
        token: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": grant.scope,
        }
        if issue_id_token and "openid" in grant.scope.split():
            token["id_token"] = self._id_token(grant, access_token)
        return token

    def _authenticate_client(self, form: dict[str, str]) -> None:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            client_id, secret = auth.username, auth.password
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        if client_id != self.client_id or not hmac.compare_digest(
            (secret or "").encode(), self.client_secret.encode()
        ):
            raise _OAuthError("invalid_client", "client authentication failed", 401)

    def _id_token(self, grant: _Grant, access_token: str) -> str:
        now = int(time.time())
        user = grant.user
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user["sub"],
            "aud": self.client_id,
            "iat": now,
            "exp": now + 3600,
            "at_hash": _b64url(digest[: len(digest) // 2]),
            "email": user.get("email"),
            "email_verified": user.get("email_verified", False),
            "name": user.get("name"),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        if user.get("picture"):
            claims["picture"] = user["picture"]
        header = {"alg": "RS256", "kid": self._key.kid}
        return jwt.encode(header, claims, self._key)

    def _bearer_user(self) -> dict[str, Any]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        # GitHub also accepts the legacy "token <value>" scheme.
        if scheme.lower() in ("bearer", "token"):
            with self._lock:
                user = self._access_tokens.get(token.strip())
            if user is not None:
                return user
        raise _OAuthError("invalid_token", "missing or unknown access token", 401)

    # -- WSGI app ----------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask(__name__)

        @app.errorhandler(_OAuthError)
        def oauth_error(exc: _OAuthError) -> tuple[Response, int, dict[str, str]]:
            headers = {"Cache-Control": "no-store"}
            if exc.status == 401:
                headers["WWW-Authenticate"] = f'Bearer error="{exc.error}"'
            body = {"error": exc.error, "error_description": exc.description}
            return jsonify(body), exc.status, headers

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Response:
            iss = self.issuer
            return jsonify(
                issuer=iss,
                authorization_endpoint=f"{iss}/authorize",
                token_endpoint=f"{iss}/token",
                userinfo_endpoint=f"{iss}/userinfo",
                jwks_uri=f"{iss}/jwks",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                code_challenge_methods_supported=["S256"],
                scopes_supported=["openid", "email", "profile"],
                token_endpoint_auth_methods_supported=[
                    "client_secret_basic",
                    "client_secret_post",
                ],
                grant_types_supported=["authorization_code"],
                claims_supported=["sub", "email", "email_verified", "name", "picture"],
            )

        @app.get("/jwks")
        def jwks() -> Response:
            return jsonify(KeySet([self._key]).as_dict(private=False))

        app.add_url_rule("/authorize", "authorize", self._authorize)
        app.add_url_rule("/login/oauth/authorize", "gh_authorize", self._authorize)

        @app.post("/token")
        def token() -> tuple[Response, int, dict[str, str]]:
            return (
                jsonify(self._exchange_code(issue_id_token=True)),
                200,
                {"Cache-Control": "no-store"},
            )

        @app.post("/login/oauth/access_token")
        def gh_access_token() -> Response:
            try:
                body = self._exchange_code(issue_id_token=False)
            except _OAuthError as exc:
                body = {"error": exc.error, "error_description": exc.description}
                status = exc.status
            else:
                status = 200
            # Like GitHub: form-encoded unless the client asks for JSON.
            if "application/json" in request.headers.get("Accept", ""):
                resp = jsonify(body)
            else:
                resp = Response(
                    urlencode({k: str(v) for k, v in body.items()}),
                    mimetype="application/x-www-form-urlencoded",
                )
            resp.status_code = status
            return resp

        @app.route("/userinfo", methods=["GET", "POST"])
        def userinfo() -> Response:
            user = self._bearer_user()
            keys = ("sub", "email", "email_verified", "name", "picture")
            return jsonify({k: user.get(k) for k in keys})

        @app.get("/api/user")
        def gh_user() -> Response:
            user = self._bearer_user()
            return jsonify(
                id=_github_id(user["sub"]),
                login=user.get("login"),
                name=user.get("name"),
                # GitHub only shows a *public* email here; apps must use /user/emails.
                email=user.get("public_email"),
                avatar_url=user.get("picture"),
            )

        @app.get("/api/user/emails")
        def gh_emails() -> Response:
            user = self._bearer_user()
            if not user.get("email"):
                return jsonify([])
            return jsonify(
                [
                    {
                        "email": user["email"],
                        "primary": True,
                        "verified": bool(user.get("email_verified")),
                        "visibility": None,
                    }
                ]
            )

        return app


def _github_id(sub: str) -> int:
    """Numeric GitHub-style id: the sub itself if numeric, else a stable hash."""
    if sub.isdigit():
        return int(sub)
    return int.from_bytes(hashlib.sha256(sub.encode()).digest()[:4], "big")
