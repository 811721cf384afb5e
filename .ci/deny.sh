#!/usr/bin/env bash
# cargo-deny over the workspace, with the policy in deny.toml.
#
# licenses, bans and sources always run and fail the script on a finding.
# advisories need the RustSec database, a git repository on GitHub that no
# package registry ships; this machine's network reaches only the registries.
# So: fetch it if we can; else use a local copy whose newest advisory commit is
# at most 30 days old (as deny.toml says); else say plainly that the check was
# skipped. ROOST_REQUIRE_ADVISORIES=1 turns a skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2 # builds with rustc 1.95
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $DENY_VERSION"; then
    echo "deny.sh: installing cargo-deny $DENY_VERSION"
    cargo install cargo-deny --version "$DENY_VERSION" --locked
fi

cargo deny --locked check licenses bans sources

skip() {
    echo "deny.sh: advisories SKIPPED: $1" >&2
    if [ "${ROOST_REQUIRE_ADVISORIES:-0}" = 1 ]; then
        echo "deny.sh: ROOST_REQUIRE_ADVISORIES=1, so this is a failure" >&2
        exit 1
    fi
    exit 0
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

if cargo deny fetch db >"$log" 2>&1; then
    cargo deny --locked --offline check advisories
    exit
fi
echo "deny.sh: could not fetch the RustSec advisory database:" >&2
grep -iE 'fatal|error' "$log" | head -n 3 >&2 || true

dbs="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
db=$(compgen -G "$dbs/advisory-db-*/.git" | head -n 1 || true)
if [ -z "$db" ]; then
    skip "no local copy in $dbs either (the database is only on GitHub, which this network does not reach)"
fi
db=${db%/.git}
# Judge the copy's age by its newest commit ourselves: a failed fetch leaves
# an empty, new FETCH_HEAD behind, which cargo-deny takes as a fresh fetch.
max_age_days=30 # as deny.toml's maximum-db-staleness
newest=$(git -C "$db" log -1 --format=%ct 2>/dev/null || echo 0)
age_days=$(( ($(date +%s) - newest) / 86400 ))
if [ "$age_days" -gt "$max_age_days" ]; then
    skip "the local copy in $db is $age_days days old (limit $max_age_days)"
fi
echo "deny.sh: using the local copy in $db ($age_days days old)" >&2
cargo deny --locked --offline check advisories
