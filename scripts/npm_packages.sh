#!/usr/bin/env bash
# Installs pinned npm packages into DIR once (cached; a lock serialises parallel test runs) for
# the tests and benchmarks that compare against independent JavaScript implementations, as
# scripts/s3rver.sh does for its server. Nothing is installed at build or run time.
#
#   scripts/npm_packages.sh DIR name@version ...   # exit 0: installed in DIR/node_modules
#
# Exit status 77 (ctest's "skipped") with a message when npm itself is missing; any other failure
# (no registry, a bad package) exits 1 with npm's log: tests fail loudly rather than skip.
set -euo pipefail
dir=${1:?usage: npm_packages.sh DIR name@version ...}
shift
command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 ||
  { echo "npm_packages.sh: npm/node not found (scripts/setup.sh installs nodejs npm): skipped" >&2; exit 77; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
exec 9>"$dir/.lock"
flock 9
missing=()
for spec in "$@"; do
  name=${spec%@*} version=${spec##*@}
  pkg="$dir/node_modules/$name/package.json"
  if [ ! -f "$pkg" ] || ! grep -q "\"version\": \"$version\"" "$pkg"; then missing+=("$spec"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "npm_packages.sh: installing ${missing[*]} into $dir" >&2
  (cd "$dir" && { [ -f package.json ] || npm init -y >/dev/null; } &&
   npm install --no-audit --no-fund --silent "${missing[@]}" >"$dir/install.log" 2>&1) ||
    { echo "npm_packages.sh: npm install failed (log: $dir/install.log):" >&2; tail -20 "$dir/install.log" >&2; exit 1; }
fi
