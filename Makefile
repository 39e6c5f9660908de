# The two commands a newcomer needs: `make run` and `make test`. Everything else is set up by them.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test setup system-deps lint bench fuzz lock clean translations translations-extract

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP) system-deps translations

# Page catalogs (translations/): compiled for the app; re-extract after changing page strings.
CATALOGS := $(patsubst %.po,%.mo,$(wildcard translations/*/LC_MESSAGES/messages.po))
translations: $(CATALOGS)
translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel --quiet compile -d translations -l $* -D messages

translations-extract: $(STAMP)
	$(BIN)/pybabel --quiet extract -F babel.cfg -k _ -k gettext -k N_ -k ngettext:1,2 --no-location --no-wrap --sort-output -o translations/messages.pot .
	$(BIN)/pybabel --quiet update -i translations/messages.pot -d translations -D messages --no-fuzzy-matching --no-wrap

# Debian packages the tests and benchmarks drive: chromium (web UI and visual checks) and wrk (load).
system-deps:
	@bash scripts/system-deps.sh

# A demo organisation is seeded on the first run (its admin key printed once); production installs never seed.
run: $(STAMP) translations
	RELAIS_SEED_DEMO=true RELAIS_FETCH_ALLOW_PRIVATE=true $(BIN)/relais serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

test: setup lint
	$(BIN)/pytest

# Schemathesis against the app (every operation, valid and invalid input): no server error, every response as
# the OpenAPI document says. Bounded in time; `make test` runs a short version (tests/test_fuzz.py).
fuzz: setup
	$(BIN)/python -m tests.fuzzing --examples $(or $(FUZZ_EXAMPLES),200) --seconds $(or $(FUZZ_SECONDS),600)

bench: setup
	$(BIN)/python bench/render.py

# Re-pin dependencies after editing pyproject.toml (uv is used only here, never at install time).
lock:
	$(PYTHON) -m pip install -q uv
	$(PYTHON) -m uv pip compile pyproject.toml -o requirements.lock --python-version 3.11 -q
	$(PYTHON) -m uv pip compile pyproject.toml --extra dev -o requirements-dev.lock --python-version 3.11 -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
