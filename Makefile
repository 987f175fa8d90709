# The two commands of the README. Each one sets up what it needs, from a clean clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test soak setup broker lint clean

demo: setup broker
	$(VENV)/bin/remotair demo

test: setup broker
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

# Ten minutes of faults against the simulated board (hil/scenarios/); the 60-second mix runs
# inside `make test`. JUnit report: soak-10min.xml. Exit 0 only when every expectation held.
soak: setup broker
	$(VENV)/bin/remotair sim scenario hil/scenarios/mix-10min.toml --junit soak-10min.xml

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The brokers of the integration tests, installed from Debian when missing: Mosquitto (the demo's
# too) and RabbitMQ with its MQTT plugin. The tests start their own instances on free loopback
# ports; RabbitMQ's system service, which installing the package may start, serves nothing here,
# so it is stopped and disabled again.
broker:
	@missing=; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	test -x /usr/lib/rabbitmq/bin/rabbitmq-server || missing="$$missing rabbitmq-server"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (Debian packages)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  case "$$missing" in *rabbitmq-server*) \
	    if [ -d /run/systemd/system ]; then \
	      $$SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true; fi;; \
	  esac; \
	fi

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info soak-*.xml
