#!/bin/sh
# Entry point of the sweep workers (docker-compose.yml): `cnnkeras ARGS`, with one rule for restarts.
# Exit 2 is a mistake that restarting cannot fix (a config error, a refused login): the worker says so
# and stays down (exit 0, so `restart: on-failure` leaves it). Any other failure (killed for memory,
# a database away longer than search.storage_wait_s) exits non-zero and is restarted, and the
# worker resumes the study.
cnnkeras "$@"
code=$?
if [ "$code" -eq 2 ]; then
    echo "cnnkeras exited 2 (a mistake in the config or a refused login, above): not restarting; fix it, then" \
         "docker compose up -d" >&2
    exit 0
fi
exit "$code"
