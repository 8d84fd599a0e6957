#!/usr/bin/env bash
# Set up a fresh machine: Debian packages (when root), .venv, pinned Python packages.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="ffmpeg espeak-ng flite festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k sox libsndfile1 chromium postgresql wordnet-base bsdgames asterisk-core-sounds-en asterisk-core-sounds-en-g722"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  missing=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
  fi
else
  echo "not root: make sure these Debian packages are installed: $APT_PACKAGES"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -r requirements.txt
