#!/usr/bin/env bash
# Prints the supported CPythons found on this machine, one interpreter path a line: the newest
# pyenv install of each of 3.9 to 3.13, else python3 alone (no pyenv). Exits 1 naming any
# supported version that pyenv lacks, so CI cannot skip one unnoticed.
set -euo pipefail
if ! command -v pyenv >/dev/null; then
    echo "no pyenv: python3 only" >&2
    command -v python3
    exit 0
fi
missing=()
for minor in 9 10 11 12 13; do
    found=$(ls -d "$(pyenv root)"/versions/3."$minor".* 2>/dev/null | sort -V | tail -n 1)
    if [[ -n $found ]]; then echo "$found/bin/python3"; else missing+=("3.$minor"); fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "pyenv has no CPython ${missing[*]}" >&2
    exit 1
fi
