# The two commands that matter: `make run` and `make test`. Both create .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test ingest clean-store

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

ingest: setup
	$(BIN)/rag ingest seeds/

run: ingest
	$(BIN)/rag ask "샘 올트먼이 방문한 삼성전자 반도체 공장은 어디에 있나요?"
	$(BIN)/rag ui --port $${RAG_UI_PORT:-7860}

test: setup
	$(BIN)/python -m pytest tests

clean-store:
	rm -rf "$${RAG_STORE:-$${XDG_DATA_HOME:-$$HOME/.local/share}/korean-news-rag/store}"
