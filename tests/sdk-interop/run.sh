#!/usr/bin/env bash
# Runs the official Dfns TypeScript SDK against a freshly started dfns-emulator.
#
# Usage: tests/sdk-interop/run.sh [plain] [tls]     (default: both, plain HTTP first, then --tls)
# Env:   DFNS_EMULATOR_BIN    use this emulator binary instead of `cargo build --bin dfns-emulator`
#        CARGO                cargo command (default: cargo)
#        DFNS_INTEROP_TIMEOUT seconds to wait for the emulator's bootstrap file (default: 30)
# Exit status: 0 when every run passed, otherwise non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
modes=("$@")
[[ ${#modes[@]} -eq 0 ]] && modes=(plain tls)
for mode in "${modes[@]}"; do
  [[ $mode == plain || $mode == tls ]] || { echo "run.sh: unknown mode '$mode' (expected plain or tls)" >&2; exit 2; }
done

log() { echo "sdk-interop: $*" >&2; }

# Every emulator we start and every temp dir we make is cleaned up however the script ends.
emulator_pids=()
temp_dirs=()
cleanup() {
  for pid in "${emulator_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for dir in "${temp_dirs[@]}"; do rm -rf "$dir"; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n ${DFNS_EMULATOR_BIN:-} ]]; then
  emulator_bin="$DFNS_EMULATOR_BIN"
else
  log "building dfns-emulator"
  (cd "$repo" && "${CARGO:-cargo}" build --quiet -p dfns-emulator --bin dfns-emulator)
  emulator_bin="${CARGO_TARGET_DIR:-$repo/target}/debug/dfns-emulator"
fi
[[ -x $emulator_bin ]] || { log "emulator binary not found or not executable: $emulator_bin"; exit 1; }

log "installing the pinned SDK (npm ci)"
(cd "$here" && npm ci --prefer-offline --no-audit --no-fund --cache "$HOME/.npm" >/dev/null)

# Starts the emulator in the given mode and waits until its bootstrap file is complete JSON.
# Sets `dir` to the temp dir holding bootstrap.json and emulator.log. (Not called in $(...): the pid
# must be recorded in this shell so the trap can stop it.)
start_emulator() {
  local mode="$1" pid deadline
  dir="$(mktemp -d "${TMPDIR:-/tmp}/sdk-interop.XXXXXX")"
  temp_dirs+=("$dir")
  local args=(--listen 127.0.0.1:0 --bootstrap-file "$dir/bootstrap.json")
  [[ $mode == tls ]] && args+=(--tls)
  # The emulator also reads DFNS_EMULATOR_* settings (TLS, fault injection) from the environment;
  # drop them so each run is exactly the mode asked for.
  local unset_env=()
  local name
  for name in $(compgen -e); do
    [[ $name == DFNS_EMULATOR_* ]] && unset_env+=(-u "$name")
  done
  env "${unset_env[@]}" "$emulator_bin" "${args[@]}" >"$dir/emulator.log" 2>&1 &
  pid=$!
  emulator_pids+=("$pid")
  deadline=$((SECONDS + ${DFNS_INTEROP_TIMEOUT:-30}))
  until node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$dir/bootstrap.json" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "emulator exited before writing its bootstrap file; its log:"
      tail -n 50 "$dir/emulator.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "no bootstrap file after ${DFNS_INTEROP_TIMEOUT:-30}s; emulator log:"
      tail -n 50 "$dir/emulator.log" >&2
      return 1
    fi
    sleep 0.1
  done
}

stop_emulator() {
  local pid="${emulator_pids[-1]}"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'emulator_pids[-1]'
}

status=0
for mode in "${modes[@]}"; do
  log "run '$mode': starting emulator"
  start_emulator "$mode" || { status=1; stop_emulator; continue; }
  test_env=(DFNS_EMULATOR_BOOTSTRAP="$dir/bootstrap.json")
  if [[ $mode == tls ]]; then
    node -e 'const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); if (!b.caCert) process.exit(1); process.stdout.write(b.caCert)' \
      "$dir/bootstrap.json" >"$dir/ca.pem" || { log "bootstrap file has no caCert in --tls mode"; status=1; stop_emulator; continue; }
    # Node reads extra CAs only at start-up, so it goes into the environment of `node --test`.
    test_env+=(NODE_EXTRA_CA_CERTS="$dir/ca.pem" DFNS_EXPECT_TLS=1)
  fi
  log "run '$mode': node --test against $(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).apiUrl)' "$dir/bootstrap.json")"
  if (cd "$here" && env "${test_env[@]}" node --test --test-timeout=60000 interop.test.mjs); then
    log "run '$mode': passed"
  else
    status=1
    log "run '$mode': FAILED; last lines of the emulator log:"
    tail -n 40 "$dir/emulator.log" >&2
  fi
  stop_emulator
done
exit "$status"
