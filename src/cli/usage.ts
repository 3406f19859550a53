export const USAGE = `Usage:
  bridge <config.json>                   run one site until SIGINT/SIGTERM
  bridge id <config.json>                print the site's public key (creates the key file if missing)
  bridge check <config.json>             validate a config file and exit
  bridge status <config.json> [--json]   ask the running site (its admin endpoint) for its peers' state
  bridge hash-password                   read a password on stdin, print its hash for broker.embedded.users
  bridge dht --port P [--host H] [--bootstrap host:port,...]
                                         run a standalone DHT bootstrap node for a private swarm
  bridge swarm create <root-key-file>    create a private swarm's root key (mode 0600); print the swarm id
  bridge swarm invite <root-key-file> --name NAME [--expires 30d] [--export FILTER]... [--import FILTER]...
                                         print one invite token for one site (recorded in <root-key-file>.issued.json)
  bridge swarm revoke <root-key-file> (--name NAME | --key HEX) --bootstrap host:port[,...] [--timeout 20s]
                                         publish the swarm's revocation record on the DHT
  bridge --help | --version

Logs go to stderr as JSON lines (LOG_LEVEL=debug|info|warn|error, default info).
Config reference: README.md; protocol: docs/PROTOCOL.md.`
