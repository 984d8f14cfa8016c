#!/usr/bin/env bash
# Build the book into _build/html. Notebooks are rendered with the outputs committed in them
# (the tests re-execute every notebook and compare those outputs), so the build is quick and
# needs no GPU. Sphinx warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
bash scripts/install.sh book
"$PYTHON" -c "import sys; from jupyter_book.cli.main import main; sys.exit(main())" \
  build . --warningiserror --keep-going "$@"
echo "book: open _build/html/index.html"
