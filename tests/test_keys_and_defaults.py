"""Keys and production defaults: a missing or changed secret key stops the service with what to do; demo
seeding only when asked; the admin key printed once; data files 0600 and folders 0700."""

import os
import stat
import subprocess
import sys

import pytest

from service.db import make_engine
from service.key_check import SecretKeyMismatch, check_secret_key
from service.migrate import upgrade
from service.settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _settings(tmp_path, **kw) -> Settings:
    return Settings(data_dir=tmp_path / "data", seed_demo=False, **kw)


def test_a_changed_secret_key_refuses_to_start(tmp_path):
    settings = _settings(tmp_path, secret_key="first-key")
    engine = make_engine(settings.effective_database_url.replace("relais.db", "k.db"))
    settings.ensure_data_dir()
    upgrade(engine)
    check_secret_key(engine, settings)  # first start: records the fingerprint
    check_secret_key(engine, settings)  # same key: fine
    with pytest.raises(SecretKeyMismatch, match="RELAIS_SECRET_KEY.*not the one this database was set up with"):
        check_secret_key(engine, _settings(tmp_path, secret_key="another-key"))


def test_a_lost_key_file_refuses_to_start_instead_of_making_a_new_key(tmp_path):
    settings = _settings(tmp_path)
    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    check_secret_key(engine, settings)  # first start: the key file is created
    key_file = settings.data_dir / "secret.key"
    assert key_file.exists()
    key_file.unlink()
    with pytest.raises(SecretKeyMismatch, match="key file .* is missing. Restore the original key"):
        check_secret_key(engine, settings)
    assert not key_file.exists()  # no new key was made behind the operator's back


def _relais(tmp_path, *args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
    full = {**base, "RELAIS_DATA_DIR": str(tmp_path / "data"), "RELAIS_PUBLIC_BASE_URL": "https://r.test", **env}
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], env=full, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)  # fmt: skip


def test_the_cli_stops_with_a_sentence_on_a_changed_key(tmp_path):
    assert _relais(tmp_path, "migrate", RELAIS_SECRET_KEY="one").returncode == 0
    out = _relais(tmp_path, "migrate", RELAIS_SECRET_KEY="two")
    assert out.returncode == 1
    assert "will not start" in out.stdout and "Restore the original key" in out.stdout and "Traceback" not in out.stderr


def test_no_demo_unless_asked_and_files_are_private(tmp_path):
    assert Settings.model_fields["seed_demo"].default is False
    assert _relais(tmp_path, "migrate").returncode == 0
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path.name} is readable by others"
    from sqlmodel import Session, select

    from service.models import Organisation

    engine = make_engine(f"sqlite:///{data / 'relais.db'}")
    with Session(engine) as s:
        assert s.exec(select(Organisation)).all() == []


def test_existing_world_readable_files_are_made_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "relais.db").write_bytes(b"")
    (data / "relais.db").chmod(0o644)
    _settings(tmp_path).ensure_data_dir()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "relais.db").stat().st_mode) == 0o600


def _seed_secret_and_link(settings):
    from sqlmodel import Session

    from service.connections.models import Provider, ProviderConnection
    from service.crypto import encrypt
    from service.links import Channel, employee_token, link_key, mint
    from service.models import Organisation

    engine = make_engine(settings.effective_database_url)
    with Session(engine, expire_on_commit=False) as s:
        org = Organisation(name="Acme", slug="acme")
        s.add(org)
        s.flush()
        s.add(ProviderConnection(org_id=org.id, provider=Provider.google, config={},
                                 secret_encrypted=encrypt("the-service-account-json", settings)))  # fmt: skip
        spec = mint(s, org_id=org.id, channel=Channel.newsletter, article_id=1, destination="https://acme.example/")
        s.commit()
    return engine, spec.id, employee_token(spec.id, 42, link_key(settings))


def test_secrets_rotate_re_encrypts_and_keeps_old_links_working(tmp_path):
    from sqlmodel import Session, select

    from service.connections.models import ProviderConnection
    from service.crypto import decrypt
    from service.links import link_key, parse_employee_token

    assert _relais(tmp_path, "migrate").returncode == 0  # key file mode: the first start makes the key
    settings = _settings(tmp_path)
    key_file = settings.data_dir / "secret.key"
    before = key_file.read_bytes()
    engine, spec_id, sent_token = _seed_secret_and_link(settings)

    out = _relais(tmp_path, "secrets", "rotate")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Re-encrypted 1 secret(s)" in out.stdout
    assert key_file.read_bytes() != before and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _relais(tmp_path, "migrate").returncode == 0  # the service starts with the new key
    check_secret_key(engine, settings)
    with Session(engine) as s:
        row = s.exec(select(ProviderConnection)).one()
    assert decrypt(row.secret_encrypted, settings) == "the-service-account-json"
    assert parse_employee_token(sent_token, link_key(settings)) == (spec_id, 42)  # a link sent before still works


def test_secrets_rotate_with_a_passphrase(tmp_path):
    old = {"RELAIS_SECRET_KEY": "old-passphrase"}
    assert _relais(tmp_path, "migrate", **old).returncode == 0
    _seed_secret_and_link(_settings(tmp_path, secret_key="old-passphrase"))
    refused = _relais(tmp_path, "secrets", "rotate", **old)
    assert refused.returncode == 2 and "--new-key" in refused.stdout + refused.stderr
    done = _relais(tmp_path, "secrets", "rotate", "--new-key", "new-passphrase", **old)
    assert done.returncode == 0 and "set RELAIS_SECRET_KEY" in done.stdout
    assert _relais(tmp_path, "migrate", **old).returncode == 1  # the old passphrase is no longer the key
    assert _relais(tmp_path, "migrate", RELAIS_SECRET_KEY="new-passphrase").returncode == 0
