"""Secrets at rest: a key file created once with 0600 permissions (or a key from RELAIS_SECRET_KEY); what is
stored is never the plaintext, and a changed key gives a message that says what to do."""

import pytest

from service.crypto import KEY_FILE, decrypt, encrypt
from service.errors import AppError
from service.settings import Settings


def test_key_file_is_created_once_private_and_reused(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    token = encrypt('{"private_key": "-----BEGIN PRIVATE KEY-----"}', settings)
    key_file = tmp_path / "data" / KEY_FILE
    assert (key_file.stat().st_mode & 0o777) == 0o600
    first_key = key_file.read_bytes()
    assert "PRIVATE KEY" not in token
    assert decrypt(encrypt("again", settings), settings) == "again"
    assert key_file.read_bytes() == first_key
    assert decrypt(token, Settings(data_dir=tmp_path / "data")) == '{"private_key": "-----BEGIN PRIVATE KEY-----"}'


def test_a_passphrase_setting_replaces_the_key_file(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", secret_key="correct horse battery staple")
    token = encrypt("s3cret", settings)
    assert not (tmp_path / "data" / KEY_FILE).exists()
    assert decrypt(token, Settings(data_dir=tmp_path / "other", secret_key="correct horse battery staple")) == "s3cret"
    with pytest.raises(AppError, match="cannot be decrypted.*RELAIS_SECRET_KEY"):
        decrypt(token, Settings(data_dir=tmp_path / "data", secret_key="another key"))
