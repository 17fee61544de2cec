# Chromium for the dashboard's browser tests (tests/test_dashboard_browser.py), sourced by
# .ci/run after `make install`. Debian's chromium (pip playwright drives it through
# executable_path: `playwright install` cannot download browsers here) plus a CJK font so the
# screenshots show 算力 instead of boxes; pip playwright into .venv (also in the dev extra).
# Exports SUANLI_TEST_CHROMIUM and SUANLI_SCREENSHOT_DIR (the screenshots CI keeps).
_suanli_chromium_setup() {
  local t0=$SECONDS
  if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto sans cjk"; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  fi
  .venv/bin/python -c "import playwright" 2>/dev/null || .venv/bin/pip install -q playwright
  export SUANLI_TEST_CHROMIUM="$(command -v chromium)"
  export SUANLI_SCREENSHOT_DIR="${SUANLI_CI_STATE:-/tmp}/screenshots"
  mkdir -p "$SUANLI_SCREENSHOT_DIR"
  echo "Chromium $("$SUANLI_TEST_CHROMIUM" --version 2>/dev/null | head -1) ready after $((SECONDS - t0)) s; screenshots in $SUANLI_SCREENSHOT_DIR"
}
_suanli_chromium_setup
