# The image users run:
#   docker build -t balancer .
#   docker run -e BALANCER_TOKEN=change-me-to-a-long-secret -p 8000:80 -p 9123:9123 balancer
#
# Runs as uid 1000 (never root), with a read-only root filesystem if asked
# (`--read-only`: everything it writes is under /data), and reports its
# readiness to Docker (HEALTHCHECK: `balancer healthcheck`, GET /ready).
# Docker discovery reads the Docker socket, which belongs to root and the
# host's docker group: give the container that group, e.g.
#   docker run --group-add "$(stat -c %g /var/run/docker.sock)" -v /var/run/docker.sock:/var/run/docker.sock ...
# (compose `group_add`, stack `user: "1000:<gid>"`; see docs/deploy.md).
#
# BASE names the Node.js base image; its default is the one the image is
# supported on.
ARG BASE=node:26-slim

# Production dependencies only, without what nothing reads at run time
# (type declarations, source maps, docs); npm stays in this stage.
FROM ${BASE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --update-notifier=false \
 && npm cache clean --force \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
      -o -name '*.md' -o -name '*.markdown' -o -name 'CHANGELOG*' -o -name '*.tsbuildinfo' \) -exec rm -f {} + \
 && rm -rf node_modules/@types

FROM ${BASE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json openapi.yaml ./
COPY bin ./bin
COPY src ./src
RUN mkdir -p /data && chown 1000:1000 /data
# Numeric, so orchestrators can verify it is not root (Kubernetes runAsNonRoot).
USER 1000:1000
# The API listens on every interface inside the container, so it requires a
# token: BALANCER_TOKEN, or one generated at first start, printed once and
# kept in /data/balancer.json.token.
# The health socket is in /dev/shm, private to the container and writable
# even with --read-only: `balancer healthcheck` asks this process there, not
# whichever balancer answers on a shared API port.
ENV BALANCER_API=0.0.0.0:9123 \
    BALANCER_CONFIG=/data/balancer.json \
    BALANCER_HEALTH_SOCKET=/dev/shm/balancer-ready.sock
VOLUME /data
EXPOSE 80 9123
# Healthy once the configuration is applied and every listener is bound
# (Swarm's `order: start-first` waits for it before stopping the old task).
# Each check starts a small Node process (about 0.1 CPU-second): every 10 s,
# allowed 10 s, as a start can take seconds on a busy node.
HEALTHCHECK --interval=10s --timeout=10s --start-period=60s --retries=3 CMD ["node", "bin/balancer.js", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/balancer.js"]
