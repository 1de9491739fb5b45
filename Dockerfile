# One image for every role: strata (hosts A, A2) and the demo webservers (hosts B…).
#   docker build --target runtime -t strata .      (what docker-compose.yml builds)
#   docker build --target ssh -t strata:ssh .      (the same plus an sshd; docker-compose.ssh.yml)
# Where no registry is reachable, scripts/docker-base.sh makes the base image locally first.

# --- build: all dependencies, compile TypeScript, then drop the dev dependencies -------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
# The manifests alone first, so the npm layer is reused until they change.
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) needs the sources, which are not copied yet.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# --- runtime: production dependencies and dist/ only, not root ---------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY config ./config
# The official image's unprivileged user (uid 1000); the app files stay root-owned, read-only to it.
USER node
# 2001 proxy, 4001 admin (strata); 3001 a demo webserver.
EXPOSE 2001 4001 3001
# strata's admin /health by default; a demo webserver sets STRATA_HEALTH_PORT=3001 (its /health).
# The probe is bash's /dev/tcp, not a second node process: cheap enough to run every few seconds.
ENV STRATA_HEALTH_PORT=4001
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=5 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/$STRATA_HEALTH_PORT && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -t 4 -r status <&3 && [[ $status == *' 200 '* ]]"]
# strata drains in-flight requests on SIGTERM (timeouts.shutdownMs); give it that long.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--config", "config/cluster.json"]

# --- ssh: runtime plus an sshd for the account `my` (key-only, no root) -----------------------
# Off by default (docker-compose.ssh.yml): an sshd is attack surface and `docker exec` does the
# same job. The key pair and host keys are made here, at build time, so every container of this
# image trusts the others, and nothing outside it: fine for a lab, not for production. The
# password field '*' matches no password yet is not "locked" ('!'), which sshd would refuse.
FROM runtime AS ssh
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-server openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --shell /bin/bash my \
 && install -d -m 0700 -o my -g my /home/my/.ssh \
 && ssh-keygen -q -t ed25519 -N '' -C my@strata -f /home/my/.ssh/id_ed25519 \
 && cp /home/my/.ssh/id_ed25519.pub /home/my/.ssh/authorized_keys \
 && chown -R my:my /home/my/.ssh && chmod 0600 /home/my/.ssh/* \
 && install -d -m 0700 /root/.ssh && install -m 0600 /home/my/.ssh/id_ed25519 /root/.ssh/id_ed25519 \
 && rm -f /etc/ssh/ssh_host_* && ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key \
 && echo "* $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" > /etc/ssh/ssh_known_hosts \
 && mkdir -p /run/sshd \
 && printf '%s\n' 'PermitRootLogin no' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
      'PubkeyAuthentication yes' 'AllowUsers my' 'HostKey /etc/ssh/ssh_host_ed25519_key' 'UsePAM no' \
      > /etc/ssh/sshd_config.d/strata.conf \
 && usermod -p '*' my
EXPOSE 22
# sshd needs root; the app itself still runs as `node` (setpriv drops to it and execs, so node is
# PID 1's replacement and gets SIGTERM directly).
ENTRYPOINT ["/bin/sh", "-c", "/usr/sbin/sshd && exec setpriv --reuid=node --regid=node --init-groups node dist/cli.js \"$@\"", "strata"]
CMD ["serve", "--config", "config/cluster.json"]
