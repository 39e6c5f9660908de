"""Runtime configuration, read from `RELAIS_*` environment variables (and `.env`)."""

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAIS_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Where the SQLite files, key file and uploads live.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    redis_url: str = Field("", description="Huey on Redis when set; Huey on SQLite otherwise.")
    queue_name: str = Field(
        "relais", min_length=1, max_length=60, description="The queue's name (instances sharing a Redis use their own)."
    )
    secret_key: SecretStr | None = Field(
        None, description="Key that encrypts secrets at rest; a key file in data_dir is created when unset."
    )
    public_base_url: str = Field("http://127.0.0.1:8000", description="Base of tracked links and asset URLs.")
    seed_demo: bool = Field(
        False, description="Seed a demo organisation (and print its admin key once) when the database is empty."
    )
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING...) of the service, workers and CLI.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as `key=value` text for people, or `json`: one JSON object a line."
    )
    redeploy_every_minutes: int = Field(15, description="How often changed signatures are re-deployed.")
    directory_sync_cron: str = Field("0 2 * * *", description="When provider directories sync (cron, UTC).")

    google_api_endpoint: str = Field("https://www.googleapis.com/", description="Root for Gmail/Directory.")
    google_token_uri: str = Field(
        "https://oauth2.googleapis.com/token",
        description="Where service-account tokens are requested; the uploaded key's own token_uri is ignored.",
    )
    google_concurrency: int = Field(16, ge=1, le=256, description="Mailboxes written at once to Gmail.")
    google_writes_per_second: float = Field(
        190.0,
        gt=0,
        description="Gmail sendAs writes per second: the project quota (1,200,000 units/min at 100 "
        "units a write) allows 200; keep a margin when other tools share the Cloud project.",
    )
    ms_authority_host: str = Field("https://login.microsoftonline.com", description="Entra authority host.")
    ms_graph_endpoint: str = Field("https://graph.microsoft.com", description="Microsoft Graph root.")
    ms_exchange_endpoint: str = Field(
        "https://outlook.office365.com", description="Exchange Online admin REST root (InvokeCommand)."
    )
    ms_ca_bundle: str = Field("", description="Extra CA bundle (PEM) for Microsoft endpoints; empty = system CAs.")
    ms_concurrency: int = Field(16, ge=1, le=256, description="Mailboxes written at once on Microsoft 365.")
    ms_writes_per_second: float | None = Field(None, gt=0, description="Steady Exchange write rate; unset = no cap.")
    addin_client_id: str = Field("", description="The add-in API's Entra app id: the `aud` its tokens must carry.")
    addin_allowed_tenants: list[str] = Field(
        default_factory=list, description="Entra tenant ids whose users may call /addin/signature (JSON list)."
    )
    addin_scope: str = Field("access_as_user", description="Delegated scope the add-in's token must carry.")
    addin_allowed_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the add-in API cross-origin (JSON list)."
    )

    # newsletter: outgoing mail and the article fetcher
    smtp_host: str = Field("127.0.0.1", description="SMTP relay that newsletters are sent through.")
    smtp_port: int = Field(25, description="Port of the SMTP relay (587 for STARTTLS, 465 for implicit TLS).")
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    smtp_tls: bool = Field(False, description="Implicit TLS from the first byte (usually port 465).")
    smtp_username: str = Field("", description="SMTP login, when the relay asks for one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (never logged).")
    smtp_from: str = Field("Relais <newsletter@relais.invalid>", description="From: of newsletters.")
    smtp_timeout_s: float = Field(30.0, description="Seconds before an SMTP step counts as failed.")
    newsletter_concurrency: int = Field(4, ge=1, le=64, description="Concurrent SMTP connections per send.")
    newsletter_rate_per_s: float = Field(0.0, ge=0, description="Messages per second at most; 0 = unlimited.")
    newsletter_lease_s: float = Field(30.0, gt=0, description="A send job silent this long is presumed dead.")
    fetch_allow_private: bool = Field(False, description="Let the article fetcher reach private/loopback hosts.")

    # providers: how long a mailbox is retried, when it is left for the next run, which Microsoft cloud
    deploy_defer_after_minutes: float = Field(
        5.0, gt=0, description="A Retry-After longer than this defers the mailbox to the next scheduled run."
    )
    deploy_retry_minutes: float = Field(
        5.0, gt=0, description="How long one mailbox (or directory page) is retried before it is deferred or failed."
    )
    deploy_helpers: int = Field(
        2,
        ge=0,
        le=32,
        description="Further worker processes invited to share each deployment (PostgreSQL only: SQLite has one "
        "writer, so helpers would only queue behind each other).",
    )
    ms_cloud: Literal["global", "usgov", "usgovdod", "china"] = Field(
        "global", description="Microsoft cloud: sets the Entra, Graph and Exchange endpoints and token resources."
    )

    # mail-flow signatures: the SMTP relay (`relais relay`, docs/mail-flow.md)
    relay_listen: str = Field("127.0.0.1:2525", description="HOST:PORT the signing relay listens on.")
    relay_next_hop: str = Field(
        "", description="HOST:PORT the relay hands mail to (e.g. <tenant>.mail.protection.outlook.com:25)."
    )
    relay_next_hop_starttls: bool = Field(False, description="Use STARTTLS (certificate verified) to the next hop.")
    relay_next_hop_ca_file: str = Field("", description="CA bundle (PEM) for the next hop; empty = system CAs.")
    relay_next_hop_timeout_s: float = Field(60.0, gt=0, description="Seconds before a next-hop step counts as failed.")
    relay_hostname: str = Field(
        "", description="The relay's FQDN (EHLO name and certificate subject); empty = host name."
    )
    relay_org: str = Field("", description="Slug of the organisation whose mail the relay signs; empty = the only one.")
    relay_domains: list[str] = Field(
        default_factory=list,
        description="Sender domains the relay accepts (JSON list); empty = the domains of the employees' addresses.",
    )
    relay_allowed_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"],
        description="Client networks that may send through the relay (JSON list of CIDRs).",
    )
    relay_tls_cert_file: str = Field("", description="PEM certificate chain offered with STARTTLS.")
    relay_tls_key_file: str = Field("", description="PEM private key of that certificate.")
    relay_require_tls: bool = Field(False, description="Refuse mail from clients that did not STARTTLS first.")
    relay_tls_client_ca_file: str = Field("", description="CA (PEM) that client certificates are checked against.")
    relay_tls_client_subjects: list[str] = Field(
        default_factory=list,
        description="Accepted client certificate names (CN or DNS SAN, JSON list); empty = no certificate check.",
    )
    relay_max_message_bytes: int = Field(157_286_400, gt=0, description="Largest message accepted (SIZE).")
    relay_max_sign_bytes: int = Field(33_554_432, gt=0, description="Larger messages pass through unsigned.")
    relay_cache_seconds: float = Field(60.0, ge=0, description="How long senders and rendered signatures are cached.")
    # web pages: sign-in sessions
    session_idle_minutes: int = Field(60, ge=1, description="A page session unused this long is signed out.")
    session_absolute_hours: int = Field(12, ge=1, description="A page session ends this long after sign-in.")
    reset_link_minutes: int = Field(30, ge=5, description="How long an emailed password-reset link works.")
    # advocacy: figures about groups of employees (a group of one is a person)
    min_group_size: int = Field(
        5, ge=2, description="Smallest group (department, team) whose figures are shown; smaller ones are not."
    )
    # single sign-on (docs/sso.md): Entra's host comes from ms_cloud / ms_authority_host (CA: ms_ca_bundle)
    google_accounts_url: str = Field(
        "https://accounts.google.com", description="Google's OpenID Connect issuer (its discovery document's base)."
    )
    sso_attempt_minutes: int = Field(10, ge=1, le=60, description="How long a sign-in may stay at the provider.")
    sso_timeout_s: float = Field(10.0, gt=0, description="Seconds before a call to an identity provider fails.")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'relais.db'}"

    def ensure_data_dir(self) -> Path:
        """The data folder, private to the service: 0700, and every file the process creates in it 0600."""
        os.umask(0o077)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.data_dir.stat().st_mode & 0o077:
            self.data_dir.chmod(0o700)
        for path in self.data_dir.glob("*.db*"):  # databases made before this rule, or by another tool
            if path.is_file() and path.stat().st_mode & 0o077:
                path.chmod(0o600)
        return self.data_dir


@lru_cache
def get_settings() -> Settings:
    return Settings()
