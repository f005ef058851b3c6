# Prism — the two commands that matter: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
export GATEWAY_PORT ?= 8080

.PHONY: install run worker test lint typecheck unit integration bench bench-smoke soak load eval-routing calibrate-routing eval-guard eval-pii eval-embeddings eval-retrieval eval-ocr eval-stt eval-gongmun train-guard lock clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	@$(UV) pip install --quiet --python $(PY) -r requirements.lock
	@$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

## Run the gateway on http://127.0.0.1:$(GATEWAY_PORT) (embedded default: SQLite, in-process cache, mock models)
run: install
	@mkdir -p var
	@GATEWAY_ENV=$${GATEWAY_ENV:-development} GATEWAY_LOG_FORMAT=$${GATEWAY_LOG_FORMAT:-console} \
	  GATEWAY_ADMIN_EMAIL=$${GATEWAY_ADMIN_EMAIL:-admin@prism.local} \
	  GATEWAY_ADMIN_PASSWORD=$${GATEWAY_ADMIN_PASSWORD:-prism-dev-admin-$$(whoami)} \
	  bash -c 'echo "Prism on http://127.0.0.1:$$GATEWAY_PORT  (OpenAI base URL: http://127.0.0.1:$$GATEWAY_PORT/v1)"; \
	           echo "Dev admin login: $$GATEWAY_ADMIN_EMAIL / $$GATEWAY_ADMIN_PASSWORD  (POST /auth/login)"; \
	           exec $(PY) -m gateway'

## A jobs worker (docs/jobs.md): Celery on GATEWAY_JOBS_BROKER_URL (default: RabbitMQ on 127.0.0.1),
## the same GATEWAY_DATABASE_URL and GATEWAY_JOBS_STORAGE_DIR as the gateway. Scale by starting more.
worker: install
	@GATEWAY_JOBS_BROKER_URL=$${GATEWAY_JOBS_BROKER_URL:-amqp://guest:guest@127.0.0.1:5672//} \
	  exec $(VENV)/bin/celery -A gateway.workers.jobs worker -Q $${GATEWAY_JOBS_QUEUE:-prism.jobs} \
	  --pool prefork --concurrency $${WORKER_CONCURRENCY:-1} --loglevel INFO

## OCR character error rate per language and condition on generated pages (docs/jobs.md)
eval-ocr: install
	PYTHONPATH=. $(PY) scripts/eval_ocr.py

eval-stt: install
	PYTHONPATH=. $(PY) scripts/eval_stt.py

lint: install
	$(VENV)/bin/ruff check gateway tests scripts
	$(VENV)/bin/mypy

typecheck: lint

## Linters, then every test suite (the 25 slowest tests are listed at the end, to keep the suite's time in view).
## Exit code 5 (no tests collected) is a failure, never a pass.
test: install lint
	@$(PY) -m pytest -q -p no:cacheprovider --durations=25 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

unit: install
	$(PY) -m pytest -q tests/unit

PRISM_BENCH := --prism-url http://127.0.0.1:18080 \
  --prism-cmd "$(abspath $(PY)) scripts/bench_prism.py serve --fake-url {fake_url} --port {port} --workers {workers}" \
  --prism-setup "$(abspath $(PY)) scripts/bench_prism.py key --url {url}" \
  --prism-teardown "$(abspath $(PY)) scripts/bench_prism.py drop --port {port}"

## Pipeline micro-benchmark, quota/cache latency, then Prism (production config; 1 worker and one per
## core) vs LiteLLM vs Portkey vs the fake, with ratios (LiteLLM and Portkey install under .bench/)
bench: install
	$(PY) scripts/bench_graph.py
	$(PY) scripts/bench_quota.py
	$(PY) scripts/bench.py $(PRISM_BENCH) --out docs/performance.md $(BENCH_ARGS)

## A few seconds, no LiteLLM: keeps the benchmark from rotting (run by the test suite too)
bench-smoke: install
	$(PY) scripts/bench.py --smoke $(PRISM_BENCH)

## Prism (production config, 1 worker) at a steady 200 req/s for 10 minutes: RSS growth and ceiling
soak: install
	$(PY) scripts/bench.py --soak $${SOAK_SECONDS:-600} --soak-only $(PRISM_BENCH) --out docs/performance.md $(BENCH_ARGS)

load: install
	@mkdir -p var/load
	$(VENV)/bin/locust -f tests/load/locustfile.py --headless -u $${USERS:-50} -r $${SPAWN:-10} \
	  -t $${DURATION:-60s} --host $${HOST:-http://127.0.0.1:$(GATEWAY_PORT)} --csv var/load/prism

eval-routing: install
	$(PY) scripts/eval_routing.py

## Propose per-intent, per-language cheap-tier thresholds from judged pairs: GATEWAY_DATABASE_URL's shadow
## pairs + public pairwise data (docs/routing.md, "Calibrating the cheap tier"); CALIBRATE_ARGS=--max-loss 0.05
calibrate-routing: install
	PYTHONPATH=. $(PY) scripts/calibrate_routing.py $(CALIBRATE_ARGS)

eval-guard: install
	$(PY) scripts/eval_guard.py

## Rebuild the injection corpus from pinned public snapshots (MIRROR=dir of bare clones) and retrain the head
train-guard: install
	$(PY) scripts/build_guard_data.py --mirror $${MIRROR:-/work/.mirror}
	$(PY) scripts/train_guard.py

## PII on values from an independent generator (Faker) plus hard negatives; 4,000-char latency (issue #21)
eval-pii: install
	$(PY) scripts/eval_pii.py $(EVAL_PII_ARGS)

## The built-in embedding model: KO/EN translation pairs, latency per input (batch 1 and 32), memory
eval-embeddings: install
	OPENBLAS_NUM_THREADS=1 $(PY) scripts/eval_embeddings.py

## Recall@5 of retrieval (dense, keyword, hybrid) on EN/KO samples; ARGS=--postgres for pgvector
eval-retrieval: install
	OPENBLAS_NUM_THREADS=1 $(PY) scripts/eval_retrieval.py $(ARGS)

## 공문 parser field accuracy: generate letters (text, PDF, scans) under .eval/gongmun, then score them
eval-gongmun: install
	$(PY) scripts/gen_gongmun.py --out .eval/gongmun --per-layout 20
	$(PY) scripts/eval_gongmun.py --data .eval/gongmun --scan-limit 3

## Re-pin requirements.lock from pyproject.toml
lock:
	$(UV) pip compile pyproject.toml --extra dev --quiet --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache var
