#!/bin/sh
# The image's default command: serve on 0.0.0.0:$SWITCHYARD_PORT (default 4000) with the config at
# $SWITCHYARD_CONFIG (default /etc/switchyard/config.yaml: simulated providers, keys from the
# environment). Give SWITCHYARD_DEMO_KEY and SWITCHYARD_ADMIN_KEY (e.g. from a secret). Any that is
# missing is generated once and kept in $SWITCHYARD_STATE_DIR/generated-keys (mode 600), never
# printed: read it with `docker exec <container> cat /var/lib/switchyard/generated-keys`.
set -eu
: "${SWITCHYARD_PORT:=4000}"
: "${SWITCHYARD_CONFIG:=/etc/switchyard/config.yaml}"
state="${SWITCHYARD_STATE_DIR:-/var/lib/switchyard}"
keys="$state/generated-keys"
if [ -z "${SWITCHYARD_DEMO_KEY:-}" ] || [ -z "${SWITCHYARD_ADMIN_KEY:-}" ]; then
  if [ ! -s "$keys" ]; then
    umask 077
    python -c 'import secrets; print("SWITCHYARD_DEMO_KEY=sk-demo-" + secrets.token_hex(24)); print("SWITCHYARD_ADMIN_KEY=sk-admin-" + secrets.token_hex(24))' > "$keys"
  fi
  given_demo="${SWITCHYARD_DEMO_KEY:-}"
  given_admin="${SWITCHYARD_ADMIN_KEY:-}"
  # shellcheck disable=SC1090
  . "$keys"
  [ -n "$given_demo" ] && SWITCHYARD_DEMO_KEY="$given_demo"
  [ -n "$given_admin" ] && SWITCHYARD_ADMIN_KEY="$given_admin"
  export SWITCHYARD_DEMO_KEY SWITCHYARD_ADMIN_KEY
  echo "switchyard: a key was not given; generated keys are in $keys (readable inside the container only)"
fi
exec switchyard serve --config "$SWITCHYARD_CONFIG" --host 0.0.0.0 --port "$SWITCHYARD_PORT" "$@"
