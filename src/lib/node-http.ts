import { createRequire } from 'node:module';

/**
 * node:http, loaded with require. An ESM `import … from 'node:http'` builds the builtin's ESM
 * facade by reading every export, and node:http's lazy getters then load Node's own bundled undici
 * (~55 ms CPU and ~13 MiB RSS at start-up, measured on Node 24.22) — which cutover never uses: it
 * brings its own undici. Types come from the normal type import.
 */
export const http: typeof import('node:http') = createRequire(import.meta.url)('node:http');
