"""Runtime configuration, read from `RELAIS_*` environment variables (and `.env`)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAIS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Where the SQLite files, key file and uploads live.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    redis_url: str = Field("", description="Huey on Redis when set; Huey on SQLite otherwise.")
    secret_key: SecretStr | None = Field(
        None, description="Key that encrypts secrets at rest; a key file in data_dir is created when unset."
    )
    public_base_url: str = Field("http://127.0.0.1:8000", description="Base of tracked links and asset URLs.")
    seed_demo: bool = Field(True, description="Seed a demo organisation when the database is empty.")
    log_level: str = "INFO"

    google_api_endpoint: str = Field("https://www.googleapis.com/", description="Root for Gmail/Directory.")
    ms_authority_host: str = "https://login.microsoftonline.com"
    ms_graph_endpoint: str = "https://graph.microsoft.com"
    ms_exchange_endpoint: str = "https://outlook.office365.com"

    # newsletter: outgoing mail and the article fetcher
    smtp_host: str = Field("127.0.0.1", description="SMTP relay that newsletters are sent through.")
    smtp_port: int = 25
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    smtp_tls: bool = Field(False, description="Implicit TLS from the first byte (usually port 465).")
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_from: str = Field("Relais <newsletter@relais.invalid>", description="From: of newsletters.")
    smtp_timeout_s: float = 30.0
    newsletter_concurrency: int = Field(4, ge=1, le=64, description="Concurrent SMTP connections per send.")
    newsletter_rate_per_s: float = Field(0.0, ge=0, description="Messages per second at most; 0 = unlimited.")
    newsletter_lease_s: float = Field(30.0, gt=0, description="A send job silent this long is presumed dead.")
    fetch_allow_private: bool = Field(False, description="Let the article fetcher reach private/loopback hosts.")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'relais.db'}"

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir


@lru_cache
def get_settings() -> Settings:
    return Settings()
