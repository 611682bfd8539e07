#!/usr/bin/env bash
# Fails when our C sources call a banned function: unbounded copies and
# formats, unchecked conversions, non-reentrant tokenizers, unbounded
# scanf. The safe replacements: snprintf, memcpy with a checked length,
# strtol/strtoul with end and errno checks, strtok_r, fgets.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
pattern='\b(strcpy|stpcpy|strcat|strncat|strncpy|sprintf|vsprintf|gets|atoi|atol|atoll|atof|strtok|scanf|fscanf|vscanf|vfscanf|alloca|tmpnam|mktemp)[[:space:]]*\('
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null || find src tests fuzz bench -name '*.[ch]')
[ ${#files[@]} -gt 0 ] || exit 0
hits=$(grep -nE "$pattern" "${files[@]}" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)' || true)
# sscanf is allowed for numbers only: no %s or %[ conversions.
hits2=$(grep -nE 'sscanf[[:space:]]*\(.*%[0-9]*(s|\[)' "${files[@]}" || true)
if [ -n "$hits$hits2" ]; then
  echo "banned function(s) used:" >&2
  printf '%s\n' "$hits" "$hits2" | sed '/^$/d' >&2
  exit 1
fi
echo "check-banned: ${#files[@]} files clean"
