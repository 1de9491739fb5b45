# One image for every role: strata (host A) and the demo webservers (hosts B…).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY config ./config
RUN npm ci --no-audit --no-fund && npm prune --omit=dev
EXPOSE 2001 4001 3001
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--config", "config/cluster.json"]
