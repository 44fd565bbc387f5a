import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { runCli } from '../../src/cli/program.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { parseDescriptors } from '../../src/cli/descriptor-file.js';
import { resolveConnection } from '../../src/cli/settings.js';
import type { CliError } from '../../src/cli/errors.js';
import { freePort } from '../support/ports.js';

// A port nothing listens on: a test that reached the network by mistake fails fast and visibly.
const closedPort = await freePort();

/** Runs the CLI in-process with captured output; nothing here reaches a server. */
async function cli(args: string[], env: Record<string, string> = {}, stdin = '') {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
    stdin: Readable.from([stdin]),
    env: { CUTOVER_URL: `http://127.0.0.1:${closedPort}`, ...env },
    now: () => new Date(),
  });
  return { code, stdout, stderr };
}

const dir = mkdtempSync(join(tmpdir(), 'cutover-cli-args-'));

describe('cli: arguments and usage errors', () => {
  it('exits 2 for commander\'s own errors, with a pointer to --help', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['stauts', 'shop/web'], /Did you mean status\?/],
      [['deploy'], /missing required argument 'namespace\/app'/],
      [['deploy', 'shop/web', '--bogus'], /unknown option '--bogus'/],
      [['deploy', 'shop', '--wait'], /expected NAMESPACE\/APP/],
      [['deploy', 'Shop_1/web'], /not a namespace name/],
      [['deploy', 'shop/web', '--timeout', '10 minutes'], /invalid duration/],
      [['deploy', 'shop/web', '--timeout'], /argument missing/],
      [['status', 'shop/web', '--last', '0'], /positive whole number/],
      [['apply'], /required option '-f, --file <file>' not specified/],
      [['env', 'set', 'ONLY_NAME'], /missing required argument 'value'/],
      [['logs', 'abc', '-n', 'Not Valid'], /not a namespace name/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      assert.equal(r.code, ExitCode.usage, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.match(r.stderr, /--help" for usage/, args.join(' '));
    }
  });

  it('with --json, a usage error is a JSON document on stdout too', async () => {
    const r = await cli(['status', 'shop', '--json']);
    assert.equal(r.code, ExitCode.usage);
    assert.deepEqual(Object.keys(JSON.parse(r.stdout)), ['ok', 'exitCode', 'error']);
    assert.equal(JSON.parse(r.stdout).exitCode, ExitCode.usage);
  });

  it('exits 2 without a command, and 0 for --help and --version', async () => {
    const none = await cli([]);
    assert.equal(none.code, ExitCode.usage);
    assert.match(none.stderr, /Usage: cutover/);
    assert.equal((await cli(['env'])).code, ExitCode.usage);

    const help = await cli(['--help']);
    assert.equal(help.code, ExitCode.success);
    assert.match(help.stdout, /Exit codes:\n\s+0  success/);
    for (const code of ['1', '2', '3', '4', '5', '6', '7']) assert.match(help.stdout, new RegExp(`^\\s+${code}  \\S`, 'm'));
    for (const command of ['apply', 'deploy', 'status', 'logs', 'rollback', 'undeploy', 'env']) {
      const r = await cli([command, '--help']);
      assert.equal(r.code, ExitCode.success, command);
      assert.match(r.stdout, /Examples:/, `${command} --help has examples`);
    }
    const version = await cli(['--version']);
    assert.equal(version.code, ExitCode.success);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it('refuses contradictory or incomplete credentials as usage errors', async () => {
    const both = await cli(['status', 'shop/web', '--token', 't', '--key-id', 'k', '--key-secret', 's']);
    assert.equal(both.code, ExitCode.usage);
    assert.match(both.stderr, /either an API key .* or a bearer token/);
    const idOnly = await cli(['status', 'shop/web'], { CUTOVER_KEY_ID: 'k' });
    assert.equal(idOnly.code, ExitCode.usage);
    assert.match(idOnly.stderr, /without its secret/);
    const badUrl = await cli(['status', 'shop/web', '--url', 'cutover:8000']);
    assert.equal(badUrl.code, ExitCode.usage);
    const noNamespace = await cli(['logs', '3f6c']);
    assert.equal(noNamespace.code, ExitCode.usage);
    assert.match(noNamespace.stderr, /-n NAMESPACE/);
  });

  it('reads credentials from flags first, then the environment, the secret also from a file', () => {
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, 'from-file\n');
    assert.deepEqual(resolveConnection({}, { CUTOVER_KEY_ID: 'k', CUTOVER_KEY_SECRET_FILE: secretFile }).credentials, { kind: 'api-key', keyId: 'k', secret: 'from-file' });
    assert.deepEqual(resolveConnection({ keyId: 'flag' }, { CUTOVER_KEY_ID: 'env', CUTOVER_KEY_SECRET: 's' }).credentials, { kind: 'api-key', keyId: 'flag', secret: 's' });
    assert.deepEqual(resolveConnection({}, { CUTOVER_TOKEN: 'jwt' }).credentials, { kind: 'bearer', token: 'jwt' });
    assert.equal(resolveConnection({}, {}).credentials, undefined, 'no credentials: plain requests');
    assert.equal(resolveConnection({ url: 'https://cutover.example.com/api/' }, {}).baseUrl, 'https://cutover.example.com/api');
    assert.throws(() => resolveConnection({ keyId: 'k', keySecretFile: join(dir, 'missing') }, {}), (e: CliError) => e.exitCode === ExitCode.invalidInput);
  });

  it('exits 3 for unreadable or unparsable descriptor files, before contacting cutover', async () => {
    const missing = await cli(['apply', '-f', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, ExitCode.invalidInput);
    assert.match(missing.stderr, /cannot read .*nope\.yaml: no such file/);
    const badYaml = join(dir, 'bad.yaml');
    writeFileSync(badYaml, 'appName: web\n  replicas: [1, 2\n');
    const yaml = await cli(['apply', '-f', badYaml]);
    assert.equal(yaml.code, ExitCode.invalidInput);
    assert.match(yaml.stderr, /is not valid YAML/);
    const badJson = await cli(['apply', '-f', '-'], {}, '{"appName": "web",}');
    assert.equal(badJson.code, ExitCode.invalidInput);
    assert.match(badJson.stderr, /stdin is not valid JSON/);
    const list = await cli(['deploy', 'shop/web', '-f', '-', '--json'], {}, '- a\n- b\n');
    assert.equal(list.code, ExitCode.invalidInput);
    assert.equal(JSON.parse(list.stdout).exitCode, ExitCode.invalidInput, '--json: the error is a JSON document on stdout too');
  });

  it('parses several YAML documents as YAML 1.1, like kubectl, and JSON lists', () => {
    const docs = parseDescriptors('appName: a\nuseHealthCheck: yes\nhealthCheckPort: 0777\n---\nappName: b\n---\n', 'app.yaml');
    assert.deepEqual(docs.map((d) => d.label), ['app.yaml document 1', 'app.yaml document 2']);
    assert.equal(docs[0]!.body['useHealthCheck'], true);
    assert.equal(docs[0]!.body['healthCheckPort'], 511);
    assert.deepEqual(parseDescriptors('[{"appName": "a"}, {"appName": "b"}]', 'x.json').map((d) => d.body['appName']), ['a', 'b']);
  });

  it('exits 6 quickly when nothing answers and retries are off', async () => {
    const r = await cli(['status', 'shop/web', '--no-retry']);
    assert.equal(r.code, ExitCode.unavailable);
    assert.match(r.stderr, /cutover unreachable: ECONNREFUSED/);
    assert.match(r.stderr, /check --url/);
  });
});
