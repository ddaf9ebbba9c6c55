# The two commands that matter: `make run` and `make test`. Both create .venv when it is missing.
# `make run` installs what the assistant needs to run, nothing more (no compiler, no browser);
# `make test` adds the test tools, including llama-cpp-python for the LLM tests (compiled once).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: setup setup-test setup-dev run test test-fast ingest clean-store

setup: $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $(RUN_STAMP)

setup-test: $(TEST_STAMP)

$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(TEST_STAMP)

setup-dev: $(DEV_STAMP)

$(DEV_STAMP): $(TEST_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(DEV_STAMP)

ingest: setup
	$(BIN)/rag ingest seeds/

run: ingest
	$(BIN)/rag ask "샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?"
	$(BIN)/rag ui --port $${RAG_UI_PORT:-7860}

# the whole suite (what CI runs): real models, Chroma servers, the browser, the llama.cpp server
test: setup-dev
	$(BIN)/python -m pytest tests --durations=10

# unit tests only (no test marked slow): a fake embedder where the real one is not the point
test-fast: setup-test
	$(BIN)/python -m pytest tests -m "not slow" -q

clean-store:
	rm -rf "$${RAG_STORE:-$${XDG_DATA_HOME:-$$HOME/.local/share}/korean-news-rag/store}"
