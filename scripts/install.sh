#!/usr/bin/env bash
# Install saelab (editable) and the extras a job needs into the active Python environment.
#   bash scripts/install.sh            the package only
#   bash scripts/install.sh book,test  with the book and test tools
# A torch that is already installed (for example Colab's GPU build) is never replaced: the
# package asks only for torch>=2.1. Where no torch is installed, the 2.13.0 CPU build is
# installed first (pinned, so pip does not pull the CUDA packages of the newest release).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
extras="${1:-}"

if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  echo "install: keeping the installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
else
  echo "install: no torch found; installing torch==2.13.0"
  "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi

target="."
[ -n "$extras" ] && target=".[${extras}]"
"$PYTHON" -m pip install --quiet -e "$target"
echo "install: saelab installed with extras '${extras:-none}'"
