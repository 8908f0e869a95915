#!/usr/bin/env bash
# Prints the path of the Chromium the browser tests drive (through Playwright, which never
# downloads a browser of its own here). TEST_CHROMIUM wins when set; otherwise the machine's
# `chromium` is used, installed from Debian's package when missing and running as root.
# A missing browser is an error, never a reason to skip.
set -euo pipefail

if [ -n "${TEST_CHROMIUM:-}" ]; then
  if [ ! -x "$TEST_CHROMIUM" ]; then
    echo "TEST_CHROMIUM=$TEST_CHROMIUM is not an executable" >&2
    exit 1
  fi
  echo "$TEST_CHROMIUM"
  exit 0
fi

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    echo "no Chromium: set TEST_CHROMIUM or install Debian's chromium package" >&2
    exit 1
  fi
fi

command -v chromium
