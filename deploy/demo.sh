#!/bin/sh
# The container's demo (`docker compose -f deploy/compose.yml up`): the gateway against its
# built-in ChirpStack simulator, with credentials generated at the first start, kept in the
# state volume (mode 0600) and printed, as `make run` does on a workstation.
set -eu
umask 077
secrets=/var/lib/opcgw/demo.env
random() { od -An -tx1 -N12 /dev/urandom | tr -d ' \n'; }
if [ ! -f "$secrets" ]; then
  printf 'OPCGW_CHIRPSTACK__API_TOKEN=demo-%s\nOPCGW_OPCUA__USER_PASSWORD=%s\n' \
    "$(random)" "$(random)" > "$secrets"
fi
set -a
. "$secrets"
set +a
echo "opcgw demo — credentials (kept in $secrets):"
echo "  user:     opcua-user"
echo "  password: $OPCGW_OPCUA__USER_PASSWORD"
echo "  OPC UA:   opc.tcp://localhost:4840/   console: http://localhost:8080/   metrics: http://localhost:9464/metrics"
exec /usr/local/bin/opcgw demo --config /etc/opcgw/demo.toml
