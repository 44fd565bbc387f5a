import { readFileSync } from 'node:fs';

/**
 * node's flags in production: those of `npm run serve` (the image's CMD is the same command,
 * test/integration/image.test.ts checks that), so benchmarks measure what is deployed.
 */
export function productionNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  // "node scripts/runtime.mjs node <flags…> dist/src/main.js"
  const words = pkg.scripts['serve']!.split(' ');
  return words.slice(words.indexOf('node', 1) + 1, -1);
}
