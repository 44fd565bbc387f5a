# cutover: multi-stage image. Build with dev dependencies, run with production dependencies only.
#   docker build -t cutover .        (see docs/image.md)
# The commands are the same scripts CI runs (test/integration/image.test.ts checks that), and the
# base image's Node is the one package.json pins ("cutover": {"runtime"}), which every npm script
# and CI run on (scripts/runtime.mjs; here it finds that Node already in place and installs nothing).

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/runtime.mjs ./scripts/
COPY scripts/build-ui.ts ./scripts/
COPY src ./src
# The web UI's sources; `npm run build` bundles them into dist/ui, which the runtime stage copies with dist.
COPY ui ./ui
RUN npm run build

FROM node:24.22.3-bookworm-slim
ENV NODE_ENV=production \
    CUTOVER_HOST=0.0.0.0 \
    CUTOVER_PORT=8000
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The node image's unprivileged user (uid 1000); the cluster manifests also run as non-root.
USER node
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.CUTOVER_PORT || 8000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# main.js handles SIGTERM: stops taking work, hands it over, closes websockets, exits.
STOPSIGNAL SIGTERM
# = `npm run serve` without the bootstrap (this image's node is the pinned one). A young generation
# of 4 MiB semi-spaces instead of up to 16: ≈ 18 MiB less RSS while deploying, CPU within the noise
# (docs/benchmarks.md, "--max-semi-space-size").
CMD ["node", "--max-semi-space-size=4", "dist/src/main.js"]
