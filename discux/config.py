"""Configuration read from the environment (and a `.env` file when present)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from discux.models.auth import PLANS


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 1 or 0 (got {value!r})")


def _positive_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds (got {value!r})") from None
    if number <= 0:
        raise ConfigError(f"{name} must be greater than 0 (got {value!r})")
    return number


def _whole_number(name: str, default: int, low: int, high: int) -> int:
    value = os.environ.get(name) or str(default)
    if not value.isdigit() or not low <= int(value) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high} (got {value!r})")
    return int(value)


def _choice(name: str, choices: tuple[str, ...], default: str, *, upper: bool = False) -> str:
    value = (os.environ.get(name) or default).strip()
    value = value.upper() if upper else value.lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {os.environ[name]!r})")
    return value


def _pair(prefix: str) -> tuple[str | None, str | None]:
    """OAuth client id/secret: both or neither, so a half-configured provider fails loudly."""
    client_id = os.environ.get(f"{prefix}_CLIENT_ID") or None
    client_secret = os.environ.get(f"{prefix}_CLIENT_SECRET") or None
    if bool(client_id) != bool(client_secret):
        missing = f"{prefix}_CLIENT_SECRET" if client_id else f"{prefix}_CLIENT_ID"
        raise ConfigError(f"{missing} is not set but its partner is: set both or neither")
    return client_id, client_secret


def _email_list(name: str) -> tuple[str, ...]:
    """A comma-separated list of email addresses, lower-cased (sign-in lower-cases them too)."""
    emails = tuple(part.strip().lower() for part in (os.environ.get(name) or "").split(","))
    emails = tuple(email for email in emails if email)
    malformed = [email for email in emails if "@" not in email]
    if malformed:
        raise ConfigError(f"{name} must be email addresses separated by commas "
                          f"(got {malformed[0]!r})")
    return emails


def _database_url(instance_path: Path) -> str:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'discux.db'}"
    scheme = urlsplit(url).scheme
    if scheme not in {"sqlite", "mysql+pymysql", "mariadb+pymysql"}:
        raise ConfigError(
            f"DATABASE_URL must start with sqlite:// or mysql+pymysql:// (got {scheme or url!r})"
        )
    if scheme != "sqlite" and "charset=" not in url:
        url += ("&" if "?" in url else "?") + "charset=utf8mb4"
    return url


def _secret_key(instance_path: Path, dev_login: bool) -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        if len(key) < 16:
            raise ConfigError("SECRET_KEY is too short: use at least 16 random characters")
        return key
    if not dev_login:
        raise ConfigError(
            'SECRET_KEY is not set: export SECRET_KEY="$(python3 -c '
            "'import secrets; print(secrets.token_hex(32))')\""
        )
    # Demo mode on a laptop: keep one generated key so restarts don't sign everyone out.
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def trusted_proxy_hops() -> int:
    """DISCUX_TRUSTED_PROXIES: how many proxies in front of the app add X-Forwarded-* headers.

    Read by create_app (werkzeug's ProxyFix) and gunicorn.conf.py (forwarded_allow_ips), so
    both believe the same headers: with 0, none at all, whoever sends them."""
    value = os.environ.get("DISCUX_TRUSTED_PROXIES") or "0"
    if not value.isdigit() or not 0 <= int(value) <= 10:
        raise ConfigError(
            f"DISCUX_TRUSTED_PROXIES must be a whole number from 0 to 10 (got {value!r})")
    return int(value)


# The machine's own names are always answered: health checks and `curl http://127.0.0.1:8000/`
# on the host (links never come from them once DISCUX_BASE_URL is set). Demo mode without
# DISCUX_BASE_URL answers only to these: a page on another site whose name resolves to this
# machine (DNS rebinding) gets 400, not the app.
LOCAL_HOSTS = ("localhost", "127.0.0.1")


def finish_config(config: dict) -> None:
    """Settings that follow from others, once create_app has merged any overrides.

    Every absolute link the app sends comes from DISCUX_BASE_URL (discux/external.py), and
    requests naming another host get 400 before any view runs (Flask's TRUSTED_HOSTS), so a
    client cannot make a sign-in or invitation link point at its own host.
    """
    base_url = config.get("DISCUX_BASE_URL")
    if not base_url and not config.get("DISCUX_DEV_LOGIN"):
        raise ConfigError(
            "DISCUX_BASE_URL is not set: set it to the address people open, e.g. "
            "https://discux.example.com (only demo mode, DISCUX_DEV_LOGIN=1, runs without it)")
    if config.get("TRUSTED_HOSTS") is None:
        site_host = [urlsplit(base_url).hostname] if base_url else []
        config["TRUSTED_HOSTS"] = site_host + list(LOCAL_HOSTS)
    default_plan = config.get("DISCUX_DEFAULT_PLAN") or "free"
    if default_plan not in PLANS:
        raise ConfigError(f"DISCUX_DEFAULT_PLAN must be one of {', '.join(PLANS)} "
                          f"(got {default_plan!r})")
    config["DISCUX_DEFAULT_PLAN"] = default_plan
    admins = config.get("DISCUX_ADMIN_EMAILS") or ()
    if isinstance(admins, str):  # an override written as the variable is
        admins = admins.split(",")
    config["DISCUX_ADMIN_EMAILS"] = frozenset(
        email.strip().lower() for email in admins if email.strip())
    secure = bool(base_url and base_url.startswith("https://"))
    # An https site sends its cookies over https only (and says so with HSTS, discux/__init__.py).
    config["SESSION_COOKIE_SECURE"] = bool(config.get("SESSION_COOKIE_SECURE")) or secure
    config.setdefault("DISCUX_COOKIE_SECURE", secure)


def load_config(instance_path: Path) -> dict:
    """Build the Flask config from the environment, raising ConfigError on a bad setting."""
    dev_login = _flag("DISCUX_DEV_LOGIN")
    base_url = os.environ.get("DISCUX_BASE_URL", "").rstrip("/") or None
    if base_url and urlsplit(base_url).scheme not in {"http", "https"}:
        raise ConfigError(f"DISCUX_BASE_URL must start with http:// or https:// (got {base_url!r})")
    github = _pair("DISCUX_GITHUB")
    google = _pair("DISCUX_GOOGLE")
    oidc = _pair("DISCUX_OIDC")
    oidc_issuer = os.environ.get("DISCUX_OIDC_ISSUER") or None
    if oidc[0] and not oidc_issuer:
        raise ConfigError("DISCUX_OIDC_ISSUER is not set but DISCUX_OIDC_CLIENT_ID is")
    smtp_url = os.environ.get("DISCUX_SMTP_URL") or None
    smtp_parts = urlsplit(smtp_url or "")
    if smtp_url and (smtp_parts.scheme not in {"smtp", "smtps", "smtp+starttls", "smtp+insecure"}
                     or not smtp_parts.hostname):
        raise ConfigError("DISCUX_SMTP_URL must look like smtp://user:pass@host:587 (STARTTLS), "
                          "smtps://user:pass@host:465 or smtp+insecure://host:25")
    if smtp_parts.scheme == "smtp+insecure" and (smtp_parts.username or smtp_parts.password):
        raise ConfigError("DISCUX_SMTP_URL: smtp+insecure:// sends in clear, so it takes no user "
                          "or password; use smtp:// (STARTTLS) or smtps://")
    smtp_ca_file = os.environ.get("DISCUX_SMTP_CA_FILE") or None
    if smtp_ca_file and not Path(smtp_ca_file).is_file():
        raise ConfigError(f"DISCUX_SMTP_CA_FILE is not a readable file (got {smtp_ca_file!r})")
    llm_base_url = os.environ.get("DISCUX_LLM_BASE_URL") or None
    if llm_base_url and urlsplit(llm_base_url).scheme not in {"http", "https"}:
        raise ConfigError(f"DISCUX_LLM_BASE_URL must be an http(s) URL (got {llm_base_url!r})")
    redis_url = os.environ.get("DISCUX_REDIS_URL") or None
    if redis_url and urlsplit(redis_url).scheme not in {"redis", "rediss", "unix"}:
        raise ConfigError(f"DISCUX_REDIS_URL must start with redis:// (got {redis_url!r})")
    llm_provider = os.environ.get("DISCUX_LLM_PROVIDER") or None
    if llm_provider and llm_provider not in {"openai", "ollama", "demo"}:
        raise ConfigError(
            f"DISCUX_LLM_PROVIDER must be openai, ollama or demo (got {llm_provider!r})")
    agent_workers = os.environ.get("DISCUX_AGENT_WORKERS") or "4"
    if not agent_workers.isdigit() or not 1 <= int(agent_workers) <= 64:
        raise ConfigError(
            f"DISCUX_AGENT_WORKERS must be a whole number from 1 to 64 (got {agent_workers!r})")
    max_sockets = os.environ.get("DISCUX_MAX_SOCKETS") or "1000"
    if not max_sockets.isdigit() or int(max_sockets) < 1:
        raise ConfigError(f"DISCUX_MAX_SOCKETS must be a whole number above 0 (got {max_sockets!r})")
    http_threads = _whole_number("DISCUX_HTTP_THREADS", 32, 1, 1000)
    pool_size = (_whole_number("DISCUX_DATABASE_POOL_SIZE", 0, 1, 1000)
                 if os.environ.get("DISCUX_DATABASE_POOL_SIZE") else None)
    log_level = _choice("DISCUX_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO",
                        upper=True)
    log_format = _choice("DISCUX_LOG_FORMAT", ("text", "json"), "text")
    return {
        "SECRET_KEY": _secret_key(instance_path, dev_login),
        "SQLALCHEMY_DATABASE_URI": _database_url(instance_path),
        "DISCUX_BASE_URL": base_url,
        "DISCUX_DEV_LOGIN": dev_login,
        "DISCUX_REDIS_URL": redis_url,
        "DISCUX_TRUSTED_PROXIES": trusted_proxy_hops(),
        "DISCUX_GITHUB_CLIENT_ID": github[0],
        "DISCUX_GITHUB_CLIENT_SECRET": github[1],
        "DISCUX_GOOGLE_CLIENT_ID": google[0],
        "DISCUX_GOOGLE_CLIENT_SECRET": google[1],
        "DISCUX_OIDC_NAME": os.environ.get("DISCUX_OIDC_NAME") or "Single sign-on",
        "DISCUX_OIDC_ISSUER": oidc_issuer.rstrip("/") if oidc_issuer else None,
        "DISCUX_OIDC_CLIENT_ID": oidc[0],
        "DISCUX_OIDC_CLIENT_SECRET": oidc[1],
        "DISCUX_SMTP_URL": smtp_url,
        "DISCUX_SMTP_CA_FILE": smtp_ca_file,
        "DISCUX_MAIL_FROM": os.environ.get("DISCUX_MAIL_FROM") or "discux@localhost",
        "DISCUX_LLM_BASE_URL": llm_base_url,
        "DISCUX_LLM_API_KEY": os.environ.get("DISCUX_LLM_API_KEY") or None,
        "DISCUX_LLM_MODEL": os.environ.get("DISCUX_LLM_MODEL") or None,
        "DISCUX_LLM_TIMEOUT": _positive_float("DISCUX_LLM_TIMEOUT", 30.0),
        "DISCUX_LLM_TOTAL_TIMEOUT": (_positive_float("DISCUX_LLM_TOTAL_TIMEOUT", 1.0)
                                     if os.environ.get("DISCUX_LLM_TOTAL_TIMEOUT") else None),
        "DISCUX_LLM_PROVIDER": llm_provider,
        "DISCUX_OLLAMA_URL": (os.environ.get("DISCUX_OLLAMA_URL") or "http://127.0.0.1:11434"
                              ).rstrip("/"),
        # Threads that run agent replies in each worker process (rooms queue beyond it).
        "DISCUX_AGENT_WORKERS": int(agent_workers),
        # Threads per worker for requests (gunicorn.conf.py adds one per socket on top).
        "DISCUX_HTTP_THREADS": http_threads,
        # Connections each worker keeps open; None: one per request thread and agent thread.
        "DISCUX_DATABASE_POOL_SIZE": pool_size,
        # GitHub's endpoints, overridable so tests can point them at a local provider.
        "DISCUX_GITHUB_OAUTH_BASE": "https://github.com",
        "DISCUX_GITHUB_API_BASE": "https://api.github.com/",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "WTF_CSRF_TIME_LIMIT": None,
        "RATELIMIT_HEADERS_ENABLED": True,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_recycle": 3600},
        # Sockets per worker process; beyond it new sockets are closed at once with 1013.
        "DISCUX_MAX_SOCKETS": int(max_sockets),
        # flask-sock leaves ping and the client frame size limit off unless asked (NOTES.md).
        "SOCK_SERVER_OPTIONS": {"ping_interval": 25, "max_message_size": 4096},
        # discux/logs.py: what reaches stdout, and as text or JSON lines.
        "DISCUX_LOG_LEVEL": log_level,
        "DISCUX_LOG_FORMAT": log_format,
        # discux/admin: who may open /admin, and the plan a new user starts on.
        "DISCUX_ADMIN_EMAILS": _email_list("DISCUX_ADMIN_EMAILS"),
        "DISCUX_DEFAULT_PLAN": (os.environ.get("DISCUX_DEFAULT_PLAN") or "free").strip().lower(),
    }
