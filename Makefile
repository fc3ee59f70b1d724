# One target per habit. Run inside the project's virtual environment.
PY ?= python

.PHONY: install test test-pg test-all lint format typecheck check precommit bench bench-nlp serve demo i18n

install:            ## install elshi with the test extras
	$(PY) -m pip install -e '.[test]'

test:               ## run the test suite on SQLite
	$(PY) -m pytest

test-pg:            ## run the test suite on PostgreSQL (ELSHI_TEST_POSTGRES_URL)
	ELSHI_TEST_DB=postgres $(PY) -m pytest

test-all: test test-pg

lint:               ## ruff
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

format:             ## apply ruff formatting and fixes
	$(PY) -m ruff format src tests bench
	$(PY) -m ruff check --fix src tests bench

typecheck:          ## mypy on src/
	$(PY) -m mypy src

check: lint typecheck test

precommit:          ## install the git hook, then run ruff and mypy on every file
	$(PY) -m pre_commit install
	$(PY) -m pre_commit run --all-files

bench:              ## ingest and search benchmarks (prints figures)
	$(PY) bench/ingest.py

bench-nlp:          ## NLP quality against baselines, and speed
	$(PY) bench/enrich.py
	$(PY) bench/nlp_quality.py
	$(PY) bench/langid_speed.py
	$(PY) bench/entities_speed.py
	$(PY) bench/narratives_speed.py

serve:              ## run web + worker + scheduler
	elshi serve

demo:               ## load demo data and start
	elshi demo

i18n:               ## extract messages and update the kk/ru/en catalogs
	$(PY) -m elshi.web.i18n update
