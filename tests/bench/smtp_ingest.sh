#!/bin/sh
# Build roost (release) and run the SMTP ingest benchmark against Postfix+Dovecot.
# Arguments go to smtp_ingest.py (see --help). ROOST_BENCH_NO_BUILD=1 skips the build.
set -e
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [ "${ROOST_BENCH_NO_BUILD:-0}" != 1 ]; then
    (cd "$repo" && cargo build --release -p roost) ||
        echo "smtp_ingest.sh: roost did not build; the roost half will report an error" >&2
fi
exec python3 "$here/smtp_ingest.py" "$@"
