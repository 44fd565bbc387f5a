import { settings, type SettingSpec } from '../config.js';

/**
 * docs/configuration.md, generated from the settings table in src/config.ts (the same table that
 * validates the environment at start-up). `npm run docs` rewrites it; a unit test fails when the
 * committed file differs, so the documentation cannot drift from the code.
 */
export function configurationMarkdown(): string {
  const rows = (Object.values(settings) as SettingSpec[]).map((s) =>
    `| \`${s.env}\` | ${s.defaultText === '' ? '' : `\`${s.defaultText}\``} | ${s.description.replace(/\|/g, '\\|')} |`);
  return [
    '# Configuration',
    '',
    'cutover is configured with environment variables only. They are validated at start-up: an',
    'invalid value stops the process at once with a message naming the variable, and exit code 2.',
    '',
    '<!-- generated from src/config.ts by `npm run docs`; do not edit by hand -->',
    '',
    '| variable | default | meaning |',
    '|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
