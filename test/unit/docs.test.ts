import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { configurationMarkdown } from '../../src/docs/configuration.js';
import { settings } from '../../src/config.js';

describe('generated documentation', () => {
  it('docs/configuration.md matches the settings table (run `npm run docs` after changing src/config.ts)', () => {
    const committed = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    assert.equal(committed, configurationMarkdown());
  });

  it('documents every setting', () => {
    const text = configurationMarkdown();
    for (const s of Object.values(settings)) assert.ok(text.includes(`\`${s.env}\``), s.env);
  });
});
