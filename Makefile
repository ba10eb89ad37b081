# The project's commands. `make run` and `make test` are the README's two commands.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint typecheck bench bench-floor bench-upload bench-load bench-queue clean

$(BIN)/inspectsync: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# the tablet app's JavaScript (app/): packages pinned by app/package-lock.json, bundled
# into app/www/vendor/ for the browser (app/build.mjs)
app/node_modules/.package-lock.json: app/package.json app/package-lock.json
	cd app && npm ci --no-audit --no-fund
	touch $@

app/www/vendor/tus.js: app/node_modules/.package-lock.json app/build.mjs
	cd app && node build.mjs

install: $(BIN)/inspectsync app/www/vendor/tus.js

run: install  ## start the server on SQLite with demo data
	$(BIN)/inspectsync serve --demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy
	cd app && npx --no-install tsc -p jsconfig.json

test: lint typecheck  ## the whole suite: lint, types, tests
	cd app && node --test test/
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/run.py

bench-floor: install  ## the push of bench/run.py against a bare app: the stack's own ceiling
	$(BIN)/python bench/floor.py

bench-upload: install  ## evidence uploads: 100 photos of 3 MB over tus
	$(BIN)/python bench/upload.py

bench-load: install  ## overload: 200 tablets pull and push for 60 s (LOAD_ARGS="--duration 15" to shorten)
	$(BIN)/python bench/load.py $(LOAD_ARGS)

bench-queue: install  ## the console's review queue with 20,000 findings in scope
	$(BIN)/python bench/review_queue.py

bench-app: install  ## the tablet app in Chromium: first load, opening 300 items from IndexedDB, syncing 500 edits
	$(BIN)/python bench/app.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis app/node_modules app/www/vendor
