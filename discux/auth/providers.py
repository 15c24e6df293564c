"""OAuth/OIDC sign-in providers, each registered only when configured."""

from __future__ import annotations

from dataclasses import dataclass

from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app

from discux.auth.accounts import OAuthIdentity


@dataclass(frozen=True)
class ProviderInfo:
    key: str
    label: str


def configured_providers(app: Flask | None = None) -> list[ProviderInfo]:
    config = (app or current_app).config
    providers = []
    if config.get("DISCUX_GITHUB_CLIENT_ID"):
        providers.append(ProviderInfo("github", "GitHub"))
    if config.get("DISCUX_GOOGLE_CLIENT_ID"):
        providers.append(ProviderInfo("google", "Google"))
    if config.get("DISCUX_OIDC_CLIENT_ID"):
        providers.append(ProviderInfo("oidc", config["DISCUX_OIDC_NAME"]))
    return providers


def oauth_registry() -> OAuth:
    """This app's OAuth clients (one registry per app, so test apps never share clients)."""
    return current_app.extensions["authlib.integrations.flask_client"]


def register_providers(app: Flask) -> None:
    oauth = OAuth(app)
    config = app.config
    if config.get("DISCUX_GITHUB_CLIENT_ID"):
        base = config["DISCUX_GITHUB_OAUTH_BASE"].rstrip("/")
        oauth.register(
            "github",
            client_id=config["DISCUX_GITHUB_CLIENT_ID"],
            client_secret=config["DISCUX_GITHUB_CLIENT_SECRET"],
            authorize_url=f"{base}/login/oauth/authorize",
            access_token_url=f"{base}/login/oauth/access_token",
            api_base_url=config["DISCUX_GITHUB_API_BASE"],
            client_kwargs={"scope": "read:user user:email", "code_challenge_method": "S256"},
        )
    if config.get("DISCUX_GOOGLE_CLIENT_ID"):
        oauth.register(
            "google",
            client_id=config["DISCUX_GOOGLE_CLIENT_ID"],
            client_secret=config["DISCUX_GOOGLE_CLIENT_SECRET"],
            server_metadata_url=config.get(
                "DISCUX_GOOGLE_METADATA_URL",
                "https://accounts.google.com/.well-known/openid-configuration",
            ),
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
        )
    if config.get("DISCUX_OIDC_CLIENT_ID"):
        oauth.register(
            "oidc",
            client_id=config["DISCUX_OIDC_CLIENT_ID"],
            client_secret=config["DISCUX_OIDC_CLIENT_SECRET"],
            server_metadata_url=f"{config['DISCUX_OIDC_ISSUER']}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
        )


def identity_from_token(provider: str, token: dict) -> OAuthIdentity:
    """Ask the provider who signed in, in the shape every provider is reduced to."""
    client = oauth_registry().create_client(provider)
    if provider == "github":
        profile = client.get("user", token=token).json()
        email, verified = profile.get("email"), False
        emails = client.get("user/emails", token=token).json()
        if isinstance(emails, list):
            primary = next((e for e in emails if e.get("primary")), None)
            if primary:
                email, verified = primary.get("email"), bool(primary.get("verified"))
        return OAuthIdentity(
            provider="github",
            account_id=str(profile["id"]),
            email=email,
            email_verified=verified,
            name=profile.get("name") or profile.get("login"),
            avatar_url=profile.get("avatar_url"),
            token_type=token.get("token_type"),
            scope=token.get("scope"),
        )
    claims = token.get("userinfo") or client.userinfo(token=token)
    return OAuthIdentity(
        provider=provider,
        account_id=str(claims["sub"]),
        email=claims.get("email"),
        # Some providers send the claim as the string "true"/"false"; bool("false") is True.
        email_verified=claims.get("email_verified") in (True, "true"),
        name=claims.get("name") or claims.get("preferred_username"),
        avatar_url=claims.get("picture"),
        token_type=token.get("token_type"),
        scope=token.get("scope"),
    )
