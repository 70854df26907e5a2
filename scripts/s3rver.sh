#!/usr/bin/env bash
# A real S3-compatible server on 127.0.0.1 for tests: npm @20minutes/s3rver@4.0.4 (MIT), which
# verifies AWS Signature V4. Data, pid and log live in DIR.
#
#   scripts/s3rver.sh start DIR PORT   # installs once (cached), starts, waits until it answers
#   scripts/s3rver.sh stop DIR         # SIGTERM, then waits for the process to exit
#   scripts/s3rver.sh kill DIR         # SIGKILL (a crashed server), waits
#
# Environment: S3RVER_NPM_DIR (where the npm package is installed and cached; default
# DIR/npm), S3_KEY / S3_SECRET (the one accepted key pair; default testkey/testsecret),
# S3_BUCKET (created at start; default ckpt), S3RVER_OWNER_PID (the server exits when this
# process is gone, so a crashed test leaves no server behind). Any failure exits non-zero with a message:
# tests that need the server fail loudly rather than skip.
set -euo pipefail
cmd=${1:?usage: s3rver.sh start DIR PORT | stop DIR | kill DIR}
dir=${2:?missing DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
npm_dir=${S3RVER_NPM_DIR:-$dir/npm}
version=4.0.4

install() {
  mkdir -p "$npm_dir"
  # One installer at a time (parallel test runs share the cache).
  exec 9>"$npm_dir/.lock"
  flock 9
  if [ ! -f "$npm_dir/node_modules/@20minutes/s3rver/package.json" ] ||
     ! grep -q "\"version\": \"$version\"" "$npm_dir/node_modules/@20minutes/s3rver/package.json"; then
    command -v npm >/dev/null || { echo "s3rver.sh: npm not found (scripts/setup.sh installs nodejs npm)" >&2; exit 1; }
    echo "s3rver.sh: installing @20minutes/s3rver@$version into $npm_dir" >&2
    (cd "$npm_dir" && { [ -f package.json ] || npm init -y >/dev/null; } &&
     npm install --no-audit --no-fund --silent "@20minutes/s3rver@$version" >"$npm_dir/install.log" 2>&1) ||
      { echo "s3rver.sh: npm install failed (log: $npm_dir/install.log):" >&2; tail -20 "$npm_dir/install.log" >&2; exit 1; }
  fi
  exec 9>&-
}

wait_gone() {
  local pid=$1
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "s3rver.sh: process $pid did not exit" >&2; return 1
}

case $cmd in
  start)
    port=${3:?missing PORT}
    install
    mkdir -p "$dir/data"
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "s3rver.sh: already running in $dir (pid $(cat "$dir/pid"))" >&2; exit 1
    fi
    cd "$npm_dir"
    # --openssl-legacy-provider: s3rver encrypts continuation tokens with DES, which Node 20
    # (OpenSSL 3) only offers from the legacy provider; without it paged listings fail (500).
    S3_KEY=${S3_KEY:-testkey} S3_SECRET=${S3_SECRET:-testsecret} S3_BUCKET=${S3_BUCKET:-ckpt} \
    S3_DATA="$dir/data" S3_PORT=$port nohup node --openssl-legacy-provider -e "
      const S3rver = require('@20minutes/s3rver');
      require('@20minutes/s3rver/lib/models/account').DUMMY_ACCOUNT.createKeyPair(
          process.env.S3_KEY, process.env.S3_SECRET);
      new S3rver({address: '127.0.0.1', port: Number(process.env.S3_PORT),
                  directory: process.env.S3_DATA, silent: true,
                  configureBuckets: [{name: process.env.S3_BUCKET, configs: []}]}).run()
        .catch((e) => { console.error(e); process.exit(1); });
      // Exit with the test process that owns this server, even if it crashed.
      const owner = Number(process.env.S3RVER_OWNER_PID || 0);
      if (owner) setInterval(() => { try { process.kill(owner, 0); } catch (e) { process.exit(0); } }, 500);
      " >"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
    for _ in $(seq 150); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then exit 0; fi
      if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "s3rver.sh: server exited at start:" >&2; cat "$dir/server.log" >&2; exit 1
      fi
      sleep 0.1
    done
    echo "s3rver.sh: server did not answer on 127.0.0.1:$port within 15 s" >&2; cat "$dir/server.log" >&2
    exit 1 ;;
  stop|kill)
    [ -f "$dir/pid" ] || exit 0
    pid=$(cat "$dir/pid")
    kill "-$([ "$cmd" = kill ] && echo KILL || echo TERM)" "$pid" 2>/dev/null || true
    wait_gone "$pid"
    rm -f "$dir/pid" ;;
  *) echo "usage: s3rver.sh start DIR PORT | stop DIR | kill DIR" >&2; exit 2 ;;
esac
