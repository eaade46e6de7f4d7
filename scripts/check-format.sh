#!/usr/bin/env bash
# Checks formatting against .swift-format (swift-format ships with the Swift toolchain).
# Fix with: swift format format -i -r Sources Tests Benchmarks/Sources
set -euo pipefail
cd "$(dirname "$0")/.."
output=$(swift format lint -r Sources Tests Benchmarks/Sources 2>&1)
if [ -n "$output" ]; then
    echo "$output"
    echo "formatting differs from .swift-format; run: swift format format -i -r Sources Tests Benchmarks/Sources" >&2
    exit 1
fi
echo "formatting ok"
