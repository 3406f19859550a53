#!/bin/sh
# Runs the docker-compose.yml topology as plain processes on loopback (no Docker needed):
# a DHT bootstrap, three Mosquittos, three bridges, the sensors, the alarm, the tree watcher.
#   scripts/topology/run.sh --duration 30
# Options: see scripts/topology/run.ts. Needs `npm ci` and mosquitto (apt-get install mosquitto).
set -eu
cd "$(dirname "$0")/../.."
exec node --import tsx scripts/topology/run.ts "$@"
