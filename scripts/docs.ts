/** `npm run docs`: regenerates the documentation that is derived from code. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configurationMarkdown } from '../src/docs/configuration.js';

const target = fileURLToPath(new URL('../docs/configuration.md', import.meta.url));
writeFileSync(target, configurationMarkdown());
process.stdout.write(`wrote ${target}\n`);
