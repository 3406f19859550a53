export const USAGE = `Usage:
  bridge <config.json>                   run one site until SIGINT/SIGTERM
  bridge id <config.json>                print the site's public key (creates the key file if missing)
  bridge check <config.json>             validate a config file and exit
  bridge status <config.json> [--json]   ask the running site (its admin endpoint) for its peers' state
  bridge hash-password                   read a password on stdin, print its hash for broker.embedded.users
  bridge dht --port P [--host H] [--bootstrap host:port,...]
                                         run a standalone DHT bootstrap node for a private swarm
  bridge --help | --version

Logs go to stderr as JSON lines (LOG_LEVEL=debug|info|warn|error, default info).
Config reference: README.md; protocol: docs/PROTOCOL.md.`
