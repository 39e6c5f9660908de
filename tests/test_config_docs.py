from pathlib import Path

from service.config_docs import settings_markdown


def test_configuration_reference_is_current():
    doc = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    assert doc.read_text() == settings_markdown(), "run: relais config > docs/configuration.md"


def test_secrets_defaults_are_never_printed():
    text = settings_markdown()
    assert "RELAIS_SECRET_KEY` | (unset)" in text
