#!/usr/bin/env bash
# Run the whole test suite: unit tests, every chapter notebook under nbval (strict: outputs are
# compared, with the sanitize rules in tests/nbval_sanitize.cfg), the exercise-grading tests, and
# a book build with Sphinx warnings as errors (tests/test_book.py), and every page of the built
# book in headless Chromium with the network blocked (tests/test_browser.py; screenshots in
# artifacts/screenshots/). Installs what it needs first: the package with its extras, the book's
# npm packages, and Debian's chromium through apt-get when no Chromium is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
bash scripts/install.sh book,test,browser
source scripts/test_env.sh  # one thread per process, offline hub, Agg plots
# Two pytest-xdist workers (SAELAB_TEST_WORKERS to change; 0 runs in one process). --dist loadfile
# keeps each notebook's cells in one kernel and each test module's fixtures on one worker.
"$PYTHON" -m pytest tests notebooks -n "${SAELAB_TEST_WORKERS:-2}" --dist loadfile \
  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
  -p no:cacheprovider -ra "$@"
