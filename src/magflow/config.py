"""Settings read from the environment and a `.env` file, with the names of the user's guide."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AccountName = Literal["main", "fbe"]
ACCOUNTS: tuple[AccountName, ...] = ("main", "fbe")
DEFAULT_BASE_URL = "https://marketplace-api.emag.ro/api-3"


class SettingsError(Exception):
    """A setting has a value magflow cannot use; the message names the variable and what it expects."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

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
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("an http(s) URL such as https://marketplace-api.emag.ro/api-3")
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


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning a validation failure into one line that names the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
