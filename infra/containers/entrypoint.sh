#!/bin/sh
# Entry point of the ebbrt container images (native.Containerfile, frontend.Containerfile).
# A node tells its peers the address its messenger listens on, so it must bind an
# address they can reach: the container's own IP. Kubernetes passes it as POD_IP
# (downward API); elsewhere (compose) it is the first address of `hostname -i`.
set -eu
POD_IP="${POD_IP:-$(hostname -i | cut -d' ' -f1)}"
export POD_IP
case "${1:-}" in
  native)
    shift
    export EBBRT_LISTEN_HOST="${EBBRT_LISTEN_HOST:-$POD_IP}"
    exec node /app/packages/native/dist/node.js "$@"
    ;;
  frontend)
    shift
    # The cluster file reads ${POD_IP} (listen) and ${EBBRT_SECRET} (secret: { env: EBBRT_SECRET }).
    exec node /app/packages/hosted/dist/cli.js up "${EBBRT_CLUSTER_FILE:-/etc/ebbrt/cluster.yaml}" --foreground --state-dir /tmp/ebbrt "$@"
    ;;
  *)
    echo "usage: entrypoint.sh native|frontend [args]" >&2
    exit 2
    ;;
esac
