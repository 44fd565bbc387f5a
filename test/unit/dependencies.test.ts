import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Bare specifiers `file` imports at runtime (type-only imports are erased by the build). */
function runtimeImports(text: string): string[] {
  const out: string[] = [];
  const statements = /^\s*(import|export)\s+(?!type\b)([^;]*?)\s*from\s*'([^']+)'|^\s*import\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gm;
  for (const m of text.matchAll(statements)) {
    const specifier = m[3] ?? m[4] ?? m[5]!;
    // `import { type A, type B } from 'x'` is erased too.
    if (m[2] && /^\{[^}]*\}$/s.test(m[2].trim()) && m[2].replace(/[{}\s]/g, '').split(',').filter(Boolean).every((n) => n.startsWith('type'))) continue;
    out.push(specifier);
  }
  return out.filter((s) => !s.startsWith('.') && !s.startsWith('node:'));
}

function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

describe('dependencies', () => {
  it('every package src/ imports at runtime is a production dependency (the image installs only those)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const missing: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith('.ts')) {
          for (const s of runtimeImports(readFileSync(path, 'utf8'))) {
            if (!pkg.dependencies[packageOf(s)]) missing.push(`${relative(root, path)}: ${s}`);
          }
        }
      }
    };
    walk(join(root, 'src'));
    assert.deepEqual(missing, []);
  });

  it('the import scan sees what it must (and skips type-only imports)', () => {
    assert.deepEqual(runtimeImports([
      "import type { V1Pod } from '@kubernetes/client-node';",
      "import { type A, type B } from 'types-only';",
      "import { Agent, type Dispatcher } from 'undici';",
      "import Koa from 'koa';",
      "export { x } from 'reexported';",
      "import 'side-effect';",
      "const m = await import('lazy/sub');",
      "import { join } from 'node:path';",
      "import { a } from './local.js';",
    ].join('\n')), ['undici', 'koa', 'reexported', 'side-effect', 'lazy/sub']);
    assert.equal(packageOf('@kubernetes/client-node/dist/x'), '@kubernetes/client-node');
  });
});
