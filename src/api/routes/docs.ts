import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import Router from '@koa/router';
import type { AppState } from '../middleware.js';

const require = createRequire(import.meta.url);
/** swagger-ui-dist's files come from node_modules: the docs page needs no CDN or network. */
const SWAGGER_UI_DIR = dirname(require.resolve('swagger-ui-dist/package.json'));

export const DOCS_PATHS = ['/openapi.json', '/docs', '/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/init.js'];

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>cutover API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

// External script, so the page works under a CSP without 'unsafe-inline' for scripts.
const INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n`;

/** The page may load its own scripts and styles (swagger-ui sets some inline styles), nothing else. */
const DOCS_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/** `/openapi.json` and the documentation page `/docs`. */
export function docsRoutes(version: string): Router<AppState> {
  const router = new Router<AppState>();
  // Loaded at the first request (the loader keeps it): the document, joi-to-json and the schemas'
  // descriptions are not needed to serve deployments (docs/benchmarks.md, "Footprint").
  router.get('/openapi.json', async (ctx) => {
    const { openApiDocument } = await import('../openapi.js');
    ctx.body = openApiDocument(version);
  });
  router.get('/docs', (ctx) => {
    ctx.set('Content-Security-Policy', DOCS_CSP);
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = PAGE;
  });
  router.get('/docs/init.js', (ctx) => {
    ctx.type = 'application/javascript; charset=utf-8';
    ctx.body = INIT;
  });
  for (const file of ['swagger-ui.css', 'swagger-ui-bundle.js']) {
    router.get(`/docs/${file}`, (ctx) => {
      ctx.type = file.endsWith('.css') ? 'text/css; charset=utf-8' : 'application/javascript; charset=utf-8';
      ctx.set('Cache-Control', 'public, max-age=3600');
      ctx.body = createReadStream(join(SWAGGER_UI_DIR, file));
    });
  }
  return router;
}
