"""Run the `relais` CLI as a user does: `python main.py ...` in a subprocess, on a fresh data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from service.db import make_engine, session_scope
from service.demo import seed_demo
from service.migrate import upgrade
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Cli:
    data_dir: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAIS_")}
        env.update(RELAIS_DATA_DIR=str(self.data_dir), RELAIS_SEED_DEMO="false", RELAIS_LOG_LEVEL="WARNING")
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "main.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, seed_demo=True, _env_file=None)

    def engine(self):
        return make_engine(self.settings.effective_database_url)

    def seed_demo(self) -> str:
        """What `make run` does on a fresh install: migrate, then seed the demo organisation."""
        settings = self.settings
        settings.ensure_data_dir()
        engine = self.engine()
        upgrade(engine)
        with session_scope(engine) as session:
            key = seed_demo(session, settings)
        engine.dispose()
        return key


def one_sentence(proc: subprocess.CompletedProcess) -> str:
    """The command's error output, checked to be a message and not a traceback."""
    err = proc.stderr
    assert "Traceback" not in err and "Traceback" not in proc.stdout, err
    return " ".join(err.split())
