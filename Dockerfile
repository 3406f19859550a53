# mqtt-dht-bridge: one image for the bridge (`bridge <config.json>`, `bridge dht --port P`)
# and the smart-building demo programs (scripts/demo/*.ts run through tsx).
#
#   docker build -t mqtt-dht-bridge .
#   docker run --rm -v "$PWD/site.json:/config/site.json:ro" -v "$PWD/site.key:/config/site.key:ro" \
#     mqtt-dht-bridge /config/site.json
#
# Key files are never baked into the image (.dockerignore): mount them, mode 0600 (the
# bridge refuses a seed readable by group or others; `npm ci` sets the demo seeds to 0600).

# --- build: dependencies (native ones compiled if no prebuild fits) and the compiled CLI ---
FROM node:20-bookworm-slim AS build
# ed25519-supercop ships an N-API prebuild for linux-x64 only; elsewhere (arm64) it compiles.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: "prepare" needs the sources (copied below). Then only the two packages
# with install scripts run them: the ed25519 addon (prebuild or compile), esbuild (tsx and
# scripts/bundle.mjs, which builds dist/bridge.mjs) and
# better-sqlite3 (compiled: the outbox database).
RUN npm ci --ignore-scripts && npm rebuild ed25519-supercop esbuild better-sqlite3
COPY . .
RUN npm run build

# --- runtime ---
FROM node:20-bookworm-slim
WORKDIR /app
# Dev dependencies stay: the demo programs and the bootstrap healthcheck run through tsx.
COPY --from=build /app /app
# Runs as root so that host-owned, mode-0600 key files mounted read-only stay readable.
# Link port (configs/docker: 7000/tcp) and DHT port (6881/udp); compose publishes nothing else.
EXPOSE 7000 6881/udp
ENTRYPOINT ["node", "bin/bridge.js"]
CMD ["--help"]
