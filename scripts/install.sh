#!/usr/bin/env bash
# Install saelab (editable) and what a job needs into the active Python environment.
#   bash scripts/install.sh                    the package only
#   bash scripts/install.sh book,test          with the book and test tools
#   bash scripts/install.sh book,test,browser  ... and headless Chromium for tests/test_browser.py
# The comma list names pip extras of the package, plus two words that are not pip extras:
#   book     also installs the book's offline assets: `npm ci` (package-lock.json) into
#            node_modules/, then stages the files the pages load (MathJax 3, require.js, the
#            Jupyter widgets HTML manager) in _vendor/, which the book serves from _static/.
#   browser  the same npm packages (they include playwright-core, which drives the browser), and
#            Debian's chromium through apt-get when no Chromium is installed (needs root or sudo).
# A torch that is already installed (for example Colab's GPU build) is never replaced: the
# package asks only for torch>=2.6. Where no torch is installed, the 2.13.0 CPU build is
# installed first (pinned, so pip does not pull the CUDA packages of the newest release).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
words="${1:-}"

pip_extras=()
want_assets=0
want_browser=0
IFS=',' read -ra parts <<< "$words"
for w in "${parts[@]}"; do
  case "$w" in
    "") ;;
    browser) want_assets=1; want_browser=1 ;;
    book) want_assets=1; pip_extras+=("book") ;;
    *) pip_extras+=("$w") ;;
  esac
done

if "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  echo "install: keeping the installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
else
  echo "install: no torch found; installing torch==2.13.0"
  "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi

extras="$(IFS=','; echo "${pip_extras[*]:-}")"
target="."
[ -n "$extras" ] && target=".[${extras}]"
"$PYTHON" -m pip install --quiet -e "$target"
echo "install: saelab installed with extras '${extras:-none}'"

# --- the book's browser assets, from the npm registry ------------------------------------------
install_assets() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "install: npm not found. The book serves MathJax and the widget manager from local files" >&2
    echo "install: installed from the npm registry; install Node.js (18 or newer) with npm first." >&2
    exit 1
  fi
  local stamp="node_modules/.saelab-lock.sha256"
  local want
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "install: npm packages up to date (package-lock.json unchanged)"
  else
    echo "install: npm ci (MathJax, require.js, @jupyter-widgets/html-manager, playwright-core)"
    npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
    echo "$want" > "$stamp"
  fi
  # Stage exactly what the pages load; Sphinx copies _vendor/* into _build/html/_static/.
  rm -rf _vendor
  mkdir -p _vendor/mathjax/output _vendor/requirejs _vendor/html-manager
  local mj=node_modules/mathjax/es5
  # tex-chtml.js loads its fonts (output/chtml/fonts), TeX extensions (input/tex/extensions, on
  # demand), and the menu's accessibility components (ui, a11y, sre) relative to its own address.
  cp "$mj/tex-chtml.js" "$mj/startup.js" _vendor/mathjax/
  cp -r "$mj/input" "$mj/ui" "$mj/a11y" "$mj/sre" "$mj/adaptors" _vendor/mathjax/
  cp -r "$mj/output/chtml" "$mj/output/chtml.js" _vendor/mathjax/output/
  cp node_modules/mathjax/LICENSE _vendor/mathjax/
  cp node_modules/requirejs/require.js _vendor/requirejs/
  # embed-amd.js bundles @jupyter-widgets/base and controls (Stack, SelectionSlider, Image, ...);
  # its Font Awesome files sit next to it.
  local hm=node_modules/@jupyter-widgets/html-manager/dist
  cp "$hm/embed-amd.js" _vendor/html-manager/
  cp "$hm"/*.woff "$hm"/*.woff2 "$hm"/*.ttf "$hm"/*.eot "$hm"/*.svg _vendor/html-manager/
  echo "install: offline book assets staged in _vendor/ ($(du -sh _vendor | cut -f1))"
}

find_chromium() {
  for b in "${SAELAB_CHROMIUM:-}" chromium chromium-browser google-chrome; do
    [ -n "$b" ] && command -v "$b" >/dev/null 2>&1 && { command -v "$b"; return 0; }
  done
  return 1
}

install_browser() {
  if b="$(find_chromium)"; then
    echo "install: browser found: $b"
    return 0
  fi
  local sudo=""
  [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && sudo="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; }; then
    echo "install: apt-get install chromium chromium-driver (headless browser for tests/test_browser.py)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver fonts-dejavu-core >/dev/null
    echo "install: browser installed: $(find_chromium)"
  else
    echo "install: no Chromium, and no apt-get with root rights to install it; the browser test" >&2
    echo "install: will be skipped (it fails instead when CI=true). Set SAELAB_CHROMIUM to a binary." >&2
  fi
}

[ "$want_assets" = 1 ] && install_assets
[ "$want_browser" = 1 ] && install_browser
exit 0
