import type { CommandContext } from '../context.js';
import { CliError, invalidInput, notFound } from '../errors.js';
import { ExitCode } from '../exit-codes.js';

/**
 * `cutover env list|set|unset`: the environment-wide values cutover injects into every deployed
 * container (`/deployer/environment/NAME` in etcd), through the administrator-only REST endpoints.
 * A value applies to deployments that start afterwards; running versions keep theirs.
 */

/** The key segment as stored; containers see it upper-cased with "-" → "_". */
const KEY = /^[A-Za-z0-9_-]{1,253}$/;
const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function variableNameOf(key: string): string {
  return key.toUpperCase().replace(/-/g, '_');
}

export function checkEnvironmentKey(key: string): void {
  if (!KEY.test(key) || !VARIABLE.test(variableNameOf(key))) {
    throw invalidInput(`"${key}" cannot be an environment variable name`, undefined, 'use letters, digits, "_" and "-", not starting with a digit (e.g. DATABASE_URL or database-url)');
  }
}

/** A 404 of the route itself: this cutover predates the environment endpoints. */
function explainMissingRoute(err: unknown): never {
  if (err instanceof CliError && err.exitCode === ExitCode.notFound && err.message.includes('no route for')) {
    throw new CliError(ExitCode.notFound, `${err.message}: this cutover has no /environment endpoints`, { hint: 'upgrade cutover; until then the values are etcd keys under /deployer/environment/' });
  }
  throw err;
}

async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  // One trailing newline is what `echo` and editors add; the value does not mean it.
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export async function envListCommand(ctx: CommandContext): Promise<number> {
  const values = await ctx.api.listEnvironment().catch(explainMissingRoute);
  if (ctx.json) {
    ctx.emitJson({ ok: true, exitCode: 0, environment: values });
    return ExitCode.success;
  }
  if (values.length === 0) {
    ctx.io.stdout.write('no environment values\n');
    return ExitCode.success;
  }
  const width = Math.max(4, ...values.map((v) => v.name.length));
  const keyWidth = Math.max(3, ...values.map((v) => v.key.length));
  const lines = [ctx.style.bold(`${'NAME'.padEnd(width)}  ${'KEY'.padEnd(keyWidth)}  VALUE`), ...values.map((v) => `${v.name.padEnd(width)}  ${v.key.padEnd(keyWidth)}  ${v.value}`)];
  ctx.io.stdout.write(`${lines.join('\n')}\n`);
  return ExitCode.success;
}

export async function envSetCommand(ctx: CommandContext, key: string, value: string): Promise<number> {
  checkEnvironmentKey(key);
  const actual = value === '-' ? await readStdin(ctx.io.stdin) : value;
  await ctx.api.setEnvironment(key, actual).catch(explainMissingRoute);
  const message = `${variableNameOf(key)} set (key ${key}); deployments from now on get it`;
  if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, key, name: variableNameOf(key), message });
  else ctx.progress.info(message, 'env');
  return ExitCode.success;
}

export async function envUnsetCommand(ctx: CommandContext, key: string, flags: { ignoreNotFound?: boolean | undefined }): Promise<number> {
  checkEnvironmentKey(key);
  const existed = await ctx.api.unsetEnvironment(key).catch(explainMissingRoute);
  if (!existed && !flags.ignoreNotFound) throw notFound(`no environment value ${key}`, 'cutover env list shows the values; --ignore-not-found makes this a success');
  const message = existed ? `${variableNameOf(key)} removed (key ${key}); deployments from now on no longer get it` : `${key} was not set`;
  if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, key, removed: existed, message });
  else ctx.progress.info(message, 'env');
  return ExitCode.success;
}
