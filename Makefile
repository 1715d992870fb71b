# HepaNav: `make demo` and `make test` create the environment on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= demo-output

.PHONY: demo test lint bench env lock clean sysdeps serve web-assets

env: $(STAMP)

# The lock pins every package; the project itself is installed editable on top.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Front-end assets (NiiVue) from the committed npm lock, served locally by the web app.
NIIVUE := src/hepanav/web/static/vendor/niivue.umd.js
web-assets: $(NIIVUE)
$(NIIVUE): web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	mkdir -p $(dir $(NIIVUE))
	cp web/node_modules/@niivue/niivue/dist/niivue.umd.js $(NIIVUE)

WEBDATA ?= hepanav-data
# The web application on http://127.0.0.1:8000 with the demo case and demo users.
serve: $(STAMP) $(NIIVUE)
	$(BIN)/python -m hepanav.web.demo --data-dir $(WEBDATA)
	HEPANAV_WEB_COOKIE_SECURE=false HEPANAV_WEB_DATA_DIR=$(WEBDATA) \
	HEPANAV_WEB_REGISTRY_DB=sqlite:///$(abspath $(WEBDATA))/registry.sqlite \
	HEPANAV_WEB_DB=sqlite:///$(abspath $(WEBDATA))/web.sqlite $(BIN)/hepanav serve

demo: $(STAMP)
	$(BIN)/python -m hepanav.demo --out $(OUT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# Debian programs the tests talk to (Orthanc + DICOMweb, dciodvfy, Chromium), installed when missing.
sysdeps:
	@bash scripts/system-deps.sh

test: lint sysdeps $(NIIVUE)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

bench: $(STAMP)
	$(BIN)/python -m bench

# Re-resolve the lock after changing dependencies in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache web/node_modules $(NIIVUE)
