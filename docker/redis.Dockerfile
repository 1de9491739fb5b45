# Redis for the redis profile: Debian bookworm's redis-server (7.0) on the same base image as
# strata, so a machine that can build strata's image needs no other image from a registry.
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
HEALTHCHECK --interval=2s --timeout=2s --start-period=10s --retries=5 CMD ["redis-cli", "ping"]
STOPSIGNAL SIGTERM
# A cache, not a database: nothing is persisted; memory is bounded and evicts least recently used.
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"]
