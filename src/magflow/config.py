"""Settings read from the environment and a `.env` file, with the names of the user's guide."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AccountName = Literal["main", "fbe"]
# The same literal as magflow.emag.config.RequestFormat (importing it here would import the client package).
RequestFormat = Literal["json", "json-data", "form"]
ACCOUNTS: tuple[AccountName, ...] = ("main", "fbe")
DEFAULT_BASE_URL = "https://marketplace-api.emag.ro/api-3"


class SettingsError(Exception):
    """A setting has a value magflow cannot use; the message names the variable and what it expects."""


class Settings(BaseSettings):
    # No env file by default: load_settings passes the one env_file() chooses.
    model_config = SettingsConfigDict(env_file=None, env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    emag_main_username: str = ""
    emag_main_password: SecretStr = SecretStr("")
    emag_main_base_url: str = DEFAULT_BASE_URL
    emag_fbe_username: str = ""
    emag_fbe_password: SecretStr = SecretStr("")
    emag_fbe_base_url: str = DEFAULT_BASE_URL

    emag_sync_interval_minutes: int = Field(default=60, ge=1, le=24 * 60)
    emag_enable_scheduled_sync: bool = True
    emag_main_log_retention: int = Field(default=30, ge=1, le=3650)
    emag_main_detailed_log: bool = False
    emag_fbe_detailed_log: bool = False
    # How request bodies are written (see magflow.emag.config.RequestFormat); per account overrides all.
    emag_request_format: RequestFormat = "json"
    emag_main_request_format: RequestFormat | None = None
    emag_fbe_request_format: RequestFormat | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_file: Path = Path("logs/emag_sync.log")
    log_format: Literal["text", "json"] = "text"

    database_url: str | None = None
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    celery_broker_url: str | None = None
    magflow_data_dir: Path = Path.home() / ".magflow"

    emag_request_timeout_seconds: float = Field(default=120.0, gt=0, le=900)
    emag_connect_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    emag_max_attempts: int = Field(default=6, ge=1, le=20)
    # The largest answer read from eMAG (bytes, decoded); a larger one fails its page at once, unread.
    emag_max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024, le=1024 * 1024 * 1024)
    emag_rate_limit_per_second: float = Field(default=3.0, gt=0, le=100)
    emag_rate_limit_per_minute: int = Field(default=180, ge=1, le=6000)
    emag_order_rate_limit_per_second: float = Field(default=12.0, gt=0, le=100)
    emag_order_rate_limit_per_minute: int = Field(default=720, ge=1, le=6000)

    magflow_transform_hook: str | None = None
    magflow_stale_run_seconds: int = Field(default=300, ge=30, le=86400)
    magflow_resume_max_age_hours: float = Field(default=24, gt=0, le=24 * 30)
    magflow_task_time_limit: int = Field(default=4 * 3600, ge=600, le=48 * 3600)
    magflow_schedule_timezone: str = "Europe/Bucharest"
    magflow_api_allow_local_reads: bool = False
    magflow_api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    magflow_api_docs: bool = True
    magflow_metrics_token: SecretStr | None = None
    magflow_api_auth_failures_per_minute: int = Field(default=30, ge=0, le=100_000)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("postgresql", "postgres://")):
            raise ValueError("a PostgreSQL URL such as postgresql://user:pass@host:5432/magflow")
        return value

    @field_validator("emag_main_base_url", "emag_fbe_base_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        # Every request carries the account's password (Basic auth): over plain HTTP anyone on the path reads it.
        parts = urlsplit(value)
        secure = parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname or ""))
        if not parts.hostname or not secure:
            raise ValueError(
                "an https:// URL such as https://marketplace-api.emag.ro/api-3 (http:// only for a loopback host, "
                "such as the sandbox on 127.0.0.1, since every request carries the account's password)"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _no_placeholders(self) -> Settings:
        for account in ACCOUNTS:
            upper = account.upper()
            if self.username(account).startswith("your_"):
                raise ValueError(f"EMAG_{upper}_USERNAME still holds the placeholder from .env.example")
            if self.password(account).get_secret_value().startswith("your_"):
                raise ValueError(f"EMAG_{upper}_PASSWORD still holds the placeholder from .env.example")
        return self

    def username(self, account: AccountName) -> str:
        return self.emag_main_username if account == "main" else self.emag_fbe_username

    def password(self, account: AccountName) -> SecretStr:
        return self.emag_main_password if account == "main" else self.emag_fbe_password

    def base_url(self, account: AccountName) -> str:
        return self.emag_main_base_url if account == "main" else self.emag_fbe_base_url

    def detailed_log(self, account: AccountName) -> bool:
        return self.emag_main_detailed_log if account == "main" else self.emag_fbe_detailed_log

    def request_format(self, account: AccountName) -> RequestFormat | None:
        """The account's explicitly configured body style, or None (then a detected one, else the global one)."""
        return self.emag_main_request_format if account == "main" else self.emag_fbe_request_format

    def has_credentials(self, account: AccountName) -> bool:
        return bool(self.username(account) and self.password(account).get_secret_value())

    @property
    def any_credentials(self) -> bool:
        return any(self.has_credentials(a) for a in ACCOUNTS)

    @property
    def broker_url(self) -> str | None:
        return self.celery_broker_url or self.redis_url


_EXPECTS = {
    "int_parsing": "a whole number",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
    "greater_than_equal": "a number of at least {ge}",
    "less_than_equal": "a number of at most {le}",
    "greater_than": "a number above {gt}",
    "literal_error": "one of {expected}",
}


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    if not first["loc"]:  # a whole-model check (placeholders)
        reason = str((first.get("ctx") or {}).get("error") or first["msg"])
        return f"{reason}: put the real value in the environment or .env, or remove the line"
    name = str(first["loc"][0]).upper() if first["loc"] else "a setting"
    ctx = first.get("ctx") or {}
    template = _EXPECTS.get(first["type"])
    if template is not None:
        expects = template.format(**{k: v for k, v in ctx.items()})
    else:
        expects = str(ctx.get("error") or first["msg"])
    value = first.get("input")
    secret = "PASSWORD" in name or name.endswith("_URL")
    shown = "" if secret or value is None else f" (got {str(value)!r})"
    return f"{name} must be {expects}{shown}; fix it in the environment or .env"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ENV_FILE_VARIABLE = "MAGFLOW_ENV_FILE"


def env_file() -> Path | None:
    """The one settings file magflow reads (the environment wins over it), chosen the same way from anywhere:

    `MAGFLOW_ENV_FILE` when set (set but empty: no file); else `$XDG_CONFIG_HOME/magflow/.env`
    (`~/.config/magflow/.env`) when it exists; else `.env` in the working directory, as in the quick start.
    Once the user file exists, a `.env` in whatever directory magflow runs from is never read."""
    named = os.environ.get(ENV_FILE_VARIABLE)
    if named is not None:
        return Path(named).expanduser() if named.strip() else None
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user_file = Path(config_home) / "magflow" / ".env"
    return user_file if user_file.is_file() else Path(".env")


def load_settings(**overrides: object) -> Settings:
    """Read settings (from the environment and `env_file()`, unless `_env_file` is given), turning a
    validation failure into one line that names the variable."""
    if "_env_file" not in overrides:
        overrides["_env_file"] = env_file()
        named = os.environ.get(ENV_FILE_VARIABLE, "").strip()
        if named and not Path(named).expanduser().is_file():
            raise SettingsError(
                f"{ENV_FILE_VARIABLE} names {named}, which does not exist: create it, or unset {ENV_FILE_VARIABLE} "
                "to read ~/.config/magflow/.env or ./.env"
            )
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
