# meshfleet.mesh: the two commands of the README, and their parts.
SHELL := /bin/bash

.PHONY: test lint unit build molecule images venv lab lab-down

## Every check, from a fresh machine (this is what CI runs).
test:
	scripts/test.sh

lint:
	scripts/test.sh lint
unit:
	scripts/test.sh unit
build:
	scripts/test.sh build
## One scenario: make molecule SCENARIOS=cjdns MESHFLEET_SUITES=bookworm
molecule:
	scripts/test.sh molecule
images:
	scripts/build-images.sh
venv:
	scripts/setup-venv.sh
