# Short names for the long compose command lines. Settings and image versions: .env.
#   make up-cpu chat      start on CPU, then talk to the planner
#   make help             list the targets
SHELL := /bin/bash
COMPOSE ?= docker compose
PROMPT ?= 3 days in Lisbon in May

.PHONY: compose-check help dashboard build up-cpu up-gpu stack-running reach seed ollama chat plan doctor fitness logs ps down test benchmark dev-benchmark pin-images wheels

compose-check: ## check that Docker Compose v2.24+ is there (every compose target runs it first)
	@scripts/check-compose.sh

help: ## list the targets
	@grep -E "^[a-z-]+:.*## " $(MAKEFILE_LIST) | sed -E "s/:.*## /\t/" | column -t -s "$$(printf "\\t")"

dashboard: compose-check ## print the dashboard's login address (the token is made on the first start, kept in a volume)
	@$(COMPOSE) run --rm --no-deps secrets | sed -n "s/^dashboard login: //p"

build: compose-check ## (re)build the project images after a code change (WHEELS=offline: from ./wheels, no network)
	$(COMPOSE) build

# `seed` runs first, in this terminal, to show the download's progress; `up` then starts the
# seeding job again (compose reruns one-shots), which OLLAMA_SEEDED=1 tells to skip its check.
up-cpu: compose-check seed ## start the stack for CPU inference; example: make up-cpu
	OLLAMA_SEEDED=1 $(COMPOSE) --profile cpu up -d --wait
	@$(MAKE) --no-print-directory reach

up-gpu: compose-check seed ## start the stack on NVIDIA GPUs (set OLLAMA_MODEL for GPU in .env); example: make up-gpu
	OLLAMA_SEEDED=1 $(COMPOSE) --profile gpu up -d --wait
	@$(MAKE) --no-print-directory reach

stack-running: ## fail at once, saying how to start it, when no Ollama of the stack runs
	@$(COMPOSE) --profile cpu --profile gpu ps --status running --services | grep -qxE "ollama(-gpu)?" || \
	  { echo "error: the stack is not running (no Ollama): start it with make up-cpu or make up-gpu" >&2; exit 2; }

reach: ## say how to reach the planner's terminal and the dashboard
	@echo "planner: make chat (or docker compose attach orchestrator, then Enter); dashboard login: make dashboard"

seed: compose-check ## put the configured models into the volume, showing the download's progress
	$(COMPOSE) run --rm ollama-seed

ollama: compose-check ## run the ollama CLI in whichever Ollama variant runs; example: make ollama ARGS=ps
	$(COMPOSE) --profile cpu --profile gpu exec $$($(COMPOSE) --profile cpu --profile gpu ps --services | grep -xE "ollama(-gpu)?" | head -1) ollama $(ARGS)

chat: compose-check stack-running ## talk to the planner in this terminal; example: make chat
	$(COMPOSE) run --rm orchestrator --no-standby

plan: compose-check stack-running ## plan once and print JSON; example: make plan PROMPT="4 days in Kyoto in April"
	@$(COMPOSE) run --rm -T orchestrator --prompt "$(PROMPT)" --json

doctor: compose-check ## check every service, the model, a generation and a tool call; example: make doctor ARGS=--expect-gpu
	$(COMPOSE) run --rm -T orchestrator doctor $(ARGS)

fitness: compose-check ## which installed model can drive the tools (model-by-tool matrix); example: make fitness ARGS=--all
	$(COMPOSE) run --rm -T orchestrator fitness $(ARGS)

logs: compose-check ## follow every service's logs; example: make logs
	$(COMPOSE) --profile cpu --profile gpu logs -f --tail 100

ps: compose-check ## show the services and their health
	$(COMPOSE) --profile cpu --profile gpu ps

down: compose-check ## stop and remove the containers; models stay in their volume
	$(COMPOSE) --profile cpu --profile gpu down

test: ## run every test, the container tier included; example: make test
	scripts/test.sh

benchmark: compose-check ## latency and tokens/s by prompt size and concurrency, direct and through the pipeline; report in ./benchmark-results
	mkdir -p benchmark-results
	$(COMPOSE) run --rm -T --user "$$(id -u):$$(id -g)" -v "$(CURDIR)/benchmark-results:/out" orchestrator benchmark --output /out --shown-dir benchmark-results $(ARGS)
	@# One plan on a real small model, where the real-model tier is prepared (scripts/real-model.sh):
	@# the 1.5B model when it is there (it plans), else the 0.5B.
	@models="$${OFFLINE_AGENTS_CACHE:-$$HOME/.cache/offline-agents}/models"; \
	for size in 1.5b 0.5b; do \
	  if command -v uv >/dev/null 2>&1 && [ -f "$$models/qwen2.5-coder-$$size-instruct-q4_k_m.gguf" ]; then \
	    REAL_MODEL_SIZE=$$size uv run python scripts/benchmark.py --real-model-only; break; fi; \
	done

dev-benchmark: ## the orchestrator's own overhead, throughput, start-up time and telemetry cost, against the stand-ins
	uv run python scripts/benchmark.py

pin-images: ## on a connected machine: pin the pulled images in .env and Kubernetes to the registry's digests; example: make pin-images ARGS=--check
	python3 scripts/pin-images.py $(ARGS)

wheels: ## download every wheel the images need into ./wheels, for offline builds
	scripts/build-wheelhouse.sh
