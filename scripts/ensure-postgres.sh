#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests. Uses the machine's own
# server when one answers; otherwise installs Debian's postgresql, starts it and allows the local
# 'postgres' user in by trust on 127.0.0.1 (a throwaway test server, never a production set-up).
set -euo pipefail

answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -h 127.0.0.1 -p 5432 -q
    else
        (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
    fi
}

if answers; then
    echo "postgres: a server answers on 127.0.0.1:5432"
    exit 0
fi

echo "postgres: none answers on 127.0.0.1:5432; installing Debian's postgresql"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
version=$(ls /etc/postgresql | sort -V | tail -n 1)
hba="/etc/postgresql/$version/main/pg_hba.conf"
if ! $SUDO grep -q "medfed-tests" "$hba"; then
    printf '%s\n' "# medfed-tests: trust on loopback for the test suite" \
        "host all all 127.0.0.1/32 trust" "host all all ::1/128 trust" | $SUDO tee /tmp/medfed-hba >/dev/null
    $SUDO sh -c "cat '$hba' >> /tmp/medfed-hba && cat /tmp/medfed-hba > '$hba'"
fi
$SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || $SUDO pg_ctlcluster "$version" main start
for _ in $(seq 1 60); do
    answers && { echo "postgres: started"; exit 0; }
    sleep 1
done
echo "postgres: could not start a server on 127.0.0.1:5432" >&2
exit 1
