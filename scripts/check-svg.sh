#!/usr/bin/env bash
# Checks SVG files written by `ling results plot`: well-formed XML (xmllint or python3), axis labels present,
# and, when a Chromium is installed, that a headless browser renders each one to a non-empty PNG.
# Usage: scripts/check-svg.sh FILE.svg...
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 FILE.svg..." >&2; exit 2; }
chrome=""
for c in chromium chromium-browser google-chrome headless_shell; do
  if command -v "$c" >/dev/null 2>&1; then chrome="$c"; break; fi
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for f in "$@"; do
  if command -v xmllint >/dev/null 2>&1; then xmllint --noout "$f"
  else python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$f"; fi
  grep -q 'class="axis-label"' "$f" || { echo "$f: no axis labels" >&2; exit 1; }
  if [ -n "$chrome" ]; then
    "$chrome" --headless --disable-gpu --no-sandbox --screenshot="$tmp/shot.png" --window-size=800,1200 \
      "file://$(realpath "$f")" >/dev/null 2>&1
    [ -s "$tmp/shot.png" ] || { echo "$f: $chrome rendered nothing" >&2; exit 1; }
    echo "$f: ok (XML, axis labels, rendered by $chrome)"
  else
    echo "$f: ok (XML, axis labels; no Chromium installed, browser rendering not checked)"
  fi
done
