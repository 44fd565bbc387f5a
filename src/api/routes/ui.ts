import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import Router from '@koa/router';
import { ApiError } from '../errors.js';
import type { AppContext, AppState } from '../middleware.js';

/**
 * The built-in web UI (docs/ui.md): static files built by `npm run build` into `dist/ui/`,
 * served at `/ui/` without credentials (the pages hold no data; the API calls they make carry
 * the user's token). Hashed assets are cached for a year; index.html is revalidated every time,
 * so a new build is picked up at once. Files are compressed once, when first served.
 */

/** Only the UI's own origin; no inline script (the build emits none), no frames. */
export const UI_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "font-src 'self'",
  "connect-src 'self'", "manifest-src 'self'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.map']);
/** esbuild's `[name]-[hash]` names: only these may be cached for good. */
const HASHED_NAME = /-[A-Z0-9]{8,}\.[a-z]+$/;

interface ServedFile {
  type: string;
  etag: string;
  identity: Buffer;
  gzip?: Buffer;
  br?: Buffer;
}

/** The repository or image root: the nearest directory up from here with cutover's package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'cutover') return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the cutover package root');
    dir = parent;
  }
}

export const defaultUiDirectory = (): string => join(packageRoot(), 'dist', 'ui');

function loadFile(path: string): ServedFile {
  const identity = readFileSync(path);
  const ext = path.slice(path.lastIndexOf('.'));
  const file: ServedFile = {
    type: TYPES[ext] ?? 'application/octet-stream',
    etag: `"${createHash('sha256').update(identity).digest('base64url').slice(0, 22)}"`,
    identity,
  };
  if (COMPRESSIBLE.has(ext) && identity.length > 512) {
    file.gzip = gzipSync(identity, { level: 9 });
    file.br = brotliCompressSync(identity, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_SIZE_HINT]: identity.length } });
  }
  return file;
}

/** index.html and assets/*, read and compressed once; undefined when the UI was not built. */
function loadBuild(dir: string): { index: ServedFile; assets: Map<string, ServedFile> } | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const assets = new Map<string, ServedFile>();
  const assetDir = join(dir, 'assets');
  if (existsSync(assetDir)) for (const name of readdirSync(assetDir)) assets.set(name, loadFile(join(assetDir, name)));
  return { index: loadFile(join(dir, 'index.html')), assets };
}

/** Picks the smallest encoding the client accepts (br, then gzip) and answers 304 to a matching ETag. */
function serve(ctx: AppContext, file: ServedFile, cacheControl: string): void {
  ctx.set('Cache-Control', cacheControl);
  ctx.set('Content-Security-Policy', UI_CSP);
  ctx.set('ETag', file.etag);
  ctx.type = file.type;
  if (file.gzip) ctx.vary('Accept-Encoding');
  if (ctx.get('If-None-Match') === file.etag) {
    ctx.status = 304;
    return;
  }
  // Brotli whenever the client takes it (about 15 % smaller than gzip here), whatever order it lists them in.
  if (file.br && ctx.acceptsEncodings('br') === 'br') {
    ctx.set('Content-Encoding', 'br');
    ctx.body = file.br;
  } else if (file.gzip && ctx.acceptsEncodings('gzip') === 'gzip') {
    ctx.set('Content-Encoding', 'gzip');
    ctx.body = file.gzip;
  } else {
    ctx.body = file.identity;
  }
}

export interface UiRoutesOptions {
  /** Where the build is (default: dist/ui under the package root). */
  dir?: string;
}

/**
 * `/` (redirects to the UI), `/ui` and every page path under it (index.html: the UI routes in
 * the browser), `/ui/assets/*`. Mounted before authentication.
 */
export function uiRoutes(options: UiRoutesOptions = {}): Router<AppState> {
  const dir = options.dir ?? defaultUiDirectory();
  let build: ReturnType<typeof loadBuild>;
  let loaded = false;
  const current = () => {
    // Loaded on first use, not at start-up: API-only replicas pay nothing for it.
    if (!loaded) {
      build = loadBuild(dir);
      loaded = build !== undefined;
    }
    if (!build) throw new ApiError(503, 'ui_not_built', `the web UI is not built (no ${join(dir, 'index.html')}): run "npm run build"`);
    return build;
  };
  const router = new Router<AppState>();
  router.get('/', (ctx) => {
    ctx.status = 302;
    ctx.redirect('/ui/');
  });
  router.get('/ui/assets/:file', (ctx) => {
    const name = (ctx.params as Record<string, string>)['file'] ?? '';
    const file = current().assets.get(name);
    if (!file) throw new ApiError(404, 'not_found', `no UI asset ${JSON.stringify(name.slice(0, 100))}; reload the page (a newer build may have replaced it)`);
    serve(ctx, file, HASHED_NAME.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache');
  });
  const page = (ctx: AppContext) => serve(ctx, current().index, 'no-cache');
  router.get('/ui', page);
  router.get('/ui/{*page}', page);
  return router;
}
