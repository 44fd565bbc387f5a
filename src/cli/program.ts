import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { applyDocuments, applyJson, reportApply } from './commands/apply.js';
import { deployCommand } from './commands/deploy.js';
import { envListCommand, envSetCommand, envUnsetCommand } from './commands/env.js';
import { logsCommand } from './commands/logs.js';
import { rollbackCommand } from './commands/rollback.js';
import { statusCommand } from './commands/status.js';
import { undeployCommand } from './commands/undeploy.js';
import { cancelCommand } from './commands/cancel.js';
import { clustersCommand, promoteCommand, syncCommand } from './commands/clusters.js';
import { webhooksAddCommand, webhooksDeliveriesCommand, webhooksListCommand, webhooksRemoveCommand } from './commands/webhooks.js';
import { createContext, type CommandContext, type CommonOptions, type RunState } from './context.js';
import { loadDescriptorFile } from './descriptor-file.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { exitCodeHelp, formatError, makeStyle, colourWanted } from './format.js';
import type { CliIo } from './io.js';
import { DEFAULT_TIMEOUT, DEFAULT_URL, parseAppRef, parseNamespaceOption, parsePositiveInt, parseTimeoutOption, type AppRef } from './settings.js';

/** The `cutover` command line: commander wiring, help texts, and errors → exit codes. */

function packageVersion(): string {
  // src/cli/ under tsx, dist/src/cli/ when built: look upwards for cutover's package.json.
  let dir = new URL('./', import.meta.url);
  for (let i = 0; i < 8; i++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'cutover' && pkg.version) return pkg.version;
    } catch {
      // not here; go up
    }
    dir = new URL('../', dir);
  }
  return 'unknown';
}

const ROOT_HELP = `
Connection (flags win over the environment):
  --url URL             CUTOVER_URL (default ${DEFAULT_URL})
  --key-id ID           CUTOVER_KEY_ID        API key: every request is HMAC-signed
  --key-secret SECRET   CUTOVER_KEY_SECRET    (or --key-secret-file / CUTOVER_KEY_SECRET_FILE)
  --token JWT           CUTOVER_TOKEN         or a bearer token instead of a key
  no credentials: plain requests (a cutover with CUTOVER_AUTH=off)

Output: live progress on a terminal (NO_COLOR or --no-color: no colour), timestamped lines
without one (CI), one JSON document with --json. Transient failures (connection refused or
reset, 502/503/504) are retried with backoff until --timeout (default ${DEFAULT_TIMEOUT}); --no-retry
fails at once.

Examples:
  $ cutover deploy shop/web -f app.yaml --wait          # a CI step: apply, deploy, wait
  $ cutover status shop/web
  $ cutover rollback shop/web --wait

${exitCodeHelp()}

More: docs/cli.md`;

function commonOptions(cmd: Command, options: { timeoutMeaning?: string } = {}): Command {
  return cmd
    .option('--url <url>', `cutover's address (env CUTOVER_URL; default ${DEFAULT_URL})`)
    .option('--key-id <id>', 'API key id (env CUTOVER_KEY_ID)')
    .option('--key-secret <secret>', 'API key secret (env CUTOVER_KEY_SECRET; prefer the env or a file: flags show in ps)')
    .option('--key-secret-file <path>', 'read the API key secret from a file (env CUTOVER_KEY_SECRET_FILE)')
    .option('--token <jwt>', 'bearer token instead of an API key (env CUTOVER_TOKEN)')
    .addOption(new Option('--timeout <duration>', options.timeoutMeaning ?? 'give up after this long, retries included (90s, 10m, 1h)').argParser(parseTimeoutOption))
    .option('--no-retry', 'fail at the first transient error instead of retrying')
    .option('--json', 'print one JSON document with the result (for scripts)')
    .option('--no-color', 'no ANSI colours (also: NO_COLOR=1)');
}

const EXIT_CODES_SHORT = 'Exit codes: 0 success, 1 deployment failed, 2 usage, 3 invalid input, 4 auth refused, 5 timeout,\n6 unavailable, 7 not found, 8 conflict, 9 unexpected (cutover --help explains each).';

const WAITING_COMMANDS = new Set(['deploy', 'logs', 'rollback', 'undeploy', 'promote', 'sync']);
const WAIT_TIMEOUT = `how long to wait, retries included (default ${DEFAULT_TIMEOUT}; 90s, 10m, 1h); the deployment itself goes on after it`;

export interface CliResult {
  exitCode: number;
}

export function buildProgram(io: CliIo, run: RunState, result: CliResult): Command {
  const program = new Command('cutover');
  const errStyle = makeStyle(colourWanted(io.stderr.isTTY === true, io.env, true));

  /** Runs a command with its context; CliErrors become their exit code and a message. */
  const action = (fn: (ctx: CommandContext, opts: CommonOptions) => Promise<number>) => async (opts: CommonOptions) => {
    let ctx: CommandContext | undefined;
    try {
      ctx = createContext(io, opts, run);
      result.exitCode = await fn(ctx, opts);
    } catch (err) {
      run.progress?.close();
      result.exitCode = reportError(io, err, opts.json === true, errStyle);
    } finally {
      ctx?.progress.close();
    }
  };

  program
    .description('Deploy to Kubernetes with cutover (blue-green), wait for the outcome, and exit with a code that says what happened.')
    .version(packageVersion(), '-V, --version', 'print the CLI version')
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(errStyle.red(s)),
    })
    .addHelpText('after', ROOT_HELP);

  program.command('apply')
    .description('create or update descriptors from a YAML or JSON file; prints what changed')
    .requiredOption('-f, --file <file>', 'descriptor file: YAML (several documents with ---) or JSON; "-" reads stdin')
    .addOption(new Option('-n, --namespace <namespace>', 'namespace of documents that name none (must match those that do)').argParser(parseNamespaceOption))
    .addHelpText('after', `
Each document becomes the newest descriptor of its namespace and app: the newest existing one
is updated (PUT with If-Match, so a concurrent change is not overwritten), or one is created.
Nothing changed: "unchanged" and no write. Every document is validated by cutover first; if
any is refused, every problem is printed with its field path and nothing is stored (exit 3).
id, created and lastModified in the file are ignored (the server assigns them).

Examples:
  $ cutover apply -f app.yaml
  $ cutover apply -f app.json -n shop
  $ render-manifest | cutover apply -f -`)
    .action(action(async (ctx, opts) => {
      const o = opts as CommonOptions & { file: string; namespace?: string };
      const outcomes = await applyDocuments(ctx, await loadDescriptorFile(o.file, io.stdin), { namespace: o.namespace });
      if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, applied: applyJson(outcomes) });
      else reportApply(ctx, outcomes);
      return ExitCode.success;
    }));

  program.command('deploy')
    .description('deploy an app\'s newest descriptor (or apply FILE and deploy it); --wait follows it to the end')
    .argument('<namespace/app>', 'the app, e.g. shop/web', parseAppRef)
    .option('-f, --file <file>', 'apply the descriptor of NAMESPACE/APP from this file first ("-" = stdin)')
    .option('--version <version>', 'deploy this version: stored as the descriptor\'s newVersion, then deployed')
    .option('-w, --wait', 'follow the deployment live and exit with its outcome')
    .addOption(new Option('--cluster <name>', 'deploy to this cluster (default: the descriptor\'s, else the default cluster)').argParser(parseNamespaceOption))
    .addOption(new Option('--environment <name>', 'deploy to every cluster of this environment at once, as one release').argParser(parseNamespaceOption))
    .addHelpText('after', `
Prints the deployment id, its version and its Location. With --wait, shows each step, the
pods' health and the log as they happen, until DEPLOYED (exit 0) or FAILURE (exit 1, with the
reason and the last log lines). A dropped connection resumes where it left off.

--version V updates the app's newest descriptor to newVersion V (shown as a change) and deploys
it, so later deploys without --version deploy V again (and fail, V being live) until the
descriptor says "#" (auto-increment) or another version. With -f, V replaces newVersion of the
file's descriptor.

Examples:
  $ cutover deploy shop/web -f app.yaml --wait                # CI: one line
  $ cutover deploy shop/web --version "$GIT_SHA" --wait --timeout 15m
  $ cutover deploy shop/web --json                            # start, print the record, return`)
    .action(async (ref: AppRef, opts: CommonOptions & { file?: string; version?: string; wait?: boolean; cluster?: string; environment?: string }) =>
      action((ctx) => deployCommand(ctx, ref, opts))(opts));

  program.command('promote')
    .description('deploy the release that is DEPLOYED in one environment to every cluster of the next')
    .argument('<namespace/app>', 'the app, e.g. shop/web', parseAppRef)
    .addOption(new Option('--from <environment>', 'the environment it runs in').argParser(parseNamespaceOption).makeOptionMandatory())
    .addOption(new Option('--to <environment>', 'the environment to deploy it to').argParser(parseNamespaceOption).makeOptionMandatory())
    .option('--release <id>', 'promote this release (default: the newest DEPLOYED in --from)')
    .option('-w, --wait', 'follow the new release until every cluster has ended, exit with its outcome')
    .addHelpText('after', `
The same descriptor copy, the same version, and the images pinned to the digests its pods ran
in --from. Refused (exit 8) when the release is not DEPLOYED on every cluster of --from.

Examples:
  $ cutover promote shop/web --from staging --to production --wait`)
    .action(async (ref: AppRef, opts: CommonOptions & { from: string; to: string; release?: string; wait?: boolean }) => action((ctx) => promoteCommand(ctx, ref, opts))(opts));

  program.command('clusters')
    .description('the clusters cutover deploys to: environment, reachability, version')
    .action(async (opts: CommonOptions) => action((ctx) => clustersCommand(ctx))(opts));

  program.command('sync')
    .description('rebuild a cluster from the records: re-create the live versions it lacks')
    .addOption(new Option('--cluster <name>', 'the cluster to rebuild').argParser(parseNamespaceOption).makeOptionMandatory())
    .addOption(new Option('-n, --namespace <namespace>', 'only this namespace (default: every namespace cutover manages there; administrators)').argParser(parseNamespaceOption))
    .option('--dry-run', 'list what it would do, change nothing')
    .option('-w, --wait', 'follow the rebuilds until each has ended')
    .addHelpText('after', `
Examples:
  $ cutover sync --cluster prod-b --dry-run
  $ cutover sync --cluster prod-b -n shop --wait`)
    .action(async (opts: CommonOptions & { cluster: string; namespace?: string; dryRun?: boolean; wait?: boolean }) => action((ctx) => syncCommand(ctx, opts))(opts));

  program.command('status')
    .description('what runs now, what is deploying or queued, and the last deployments')
    .argument('<namespace/app>', 'the app, e.g. shop/web', parseAppRef)
    .addOption(new Option('--last <n>', 'how many deployments to list').default(10).argParser(parsePositiveInt))
    .addHelpText('after', `
Examples:
  $ cutover status shop/web
  $ cutover status shop/web --last 3 --json | jq .running`)
    .action(async (ref: AppRef, opts: CommonOptions & { last: number }) => action((ctx) => statusCommand(ctx, ref, opts))(opts));

  program.command('logs')
    .description('print a deployment\'s log; -f follows it live until the deployment ends')
    .argument('<deployment>', 'deployment id (or NAMESPACE/ID)')
    .addOption(new Option('-n, --namespace <namespace>', 'the deployment\'s namespace').argParser(parseNamespaceOption))
    .option('-f, --follow', 'follow the log until the deployment reaches a final status')
    .addHelpText('after', `
Lines are "<RFC 3339 time> <message>". Exits 0 when the log was printed, whatever the
deployment's outcome (deploy --wait and status judge outcomes).

Examples:
  $ cutover logs 3f6c1a2b-… -n shop
  $ cutover logs shop/3f6c1a2b-… -f`)
    .action(async (id: string, opts: CommonOptions & { namespace?: string; follow?: boolean }) => action((ctx) => logsCommand(ctx, id, opts))(opts));

  program.command('rollback')
    .description('go back to the previous version: instantly while it drains, else redeploy it (or --to VERSION)')
    .argument('<namespace/app>', 'the app, e.g. shop/web', parseAppRef)
    .option('--to <version>', 'the version to go back to (it must have been live once)')
    .option('-w, --wait', 'follow the rollback deployment and exit with its outcome')
    .addHelpText('after', `
Without --to, the rollback goes to the deployment the live version replaced. While that version
is still draining (its pods still run), traffic switches straight back to it — no new pods, well
under a second (POST /deployments/{id}/rollback) — and the live version is removed. Otherwise a
rollback is a new blue-green deployment of an earlier deployment's copy of its descriptor
(PUT /deployments/{id}): the same pod spec and settings as then; with --to, or when the live
version replaced nothing, the newest other version that was live.
The running version serves until the rolled-back one is ready and healthy, as for any deploy.
A descriptor with newVersion "#" is deployed under a new number: versions are never reused.
The app's stored descriptor is not changed; the next "cutover deploy" deploys it again.

Examples:
  $ cutover rollback shop/web --wait
  $ cutover rollback shop/web --to 41 --wait`)
    .action(async (ref: AppRef, opts: CommonOptions & { to?: string; wait?: boolean }) => action((ctx) => rollbackCommand(ctx, ref, opts))(opts));

  program.command('undeploy')
    .description('remove the app\'s live version (its workload, Services and Ingress)')
    .argument('<namespace/app>', 'the app, e.g. shop/web', parseAppRef)
    .option('-w, --wait', 'wait until it is UNDEPLOYED')
    .addHelpText('after', `
Undeploys the DEPLOYED record (or the newest one still deploying). Nothing live: prints so and
exits 0. The records and descriptors stay (status shows them).

Examples:
  $ cutover undeploy shop/web --wait`)
    .action(async (ref: AppRef, opts: CommonOptions & { wait?: boolean }) => action((ctx) => undeployCommand(ctx, ref, opts))(opts));

  program.command('cancel')
    .description('stop the app\'s deployment in progress before it goes live')
    .argument('<namespace/app>', 'the app, e.g. shop/web', parseAppRef)
    .option('--id <deployment>', 'cancel this deployment (default: the app\'s deployment in progress)')
    .option('-w, --wait', 'wait until it has stopped and cleaned up')
    .addHelpText('after', `
The deployment stops at its next safe point — any point before traffic is switched to it —
removes what it created and ends FAILURE "cancelled by <you>"; the running version is never
touched. Once its traffic switch has begun it is too late (exit 8): undeploy it, or roll back.
Nothing in progress: prints so and exits 0.

Examples:
  $ cutover cancel shop/web --wait`)
    .action(async (ref: AppRef, opts: CommonOptions & { wait?: boolean; id?: string }) => action((ctx) => cancelCommand(ctx, ref, opts))(opts));

  const env = program.command('env')
    .description('the environment values cutover injects into every deployed container (administrators)')
    .addHelpText('after', `
Values apply to deployments that start afterwards. NAME is the stored key; containers see it
upper-cased with "-" → "_". Needs administrator credentials (namespaces "*").

Examples:
  $ cutover env list
  $ cutover env set DATABASE_HOST db.internal
  $ vault read -field=dsn secret/db | cutover env set DATABASE_DSN -
  $ cutover env unset DATABASE_HOST`);
  env.command('list')
    .description('list the values')
    .action(action((ctx) => envListCommand(ctx)));
  env.command('set')
    .description('set a value ("-" reads it from stdin, keeping it out of the shell history)')
    .argument('<name>', 'variable name, e.g. DATABASE_HOST')
    .argument('<value>', 'the value, or - for stdin')
    .action(async (name: string, value: string, opts: CommonOptions) => action((ctx) => envSetCommand(ctx, name, value))(opts));
  env.command('unset')
    .description('remove a value')
    .argument('<name>', 'variable name')
    .option('--ignore-not-found', 'succeed when it was not set')
    .action(async (name: string, opts: CommonOptions & { ignoreNotFound?: boolean }) => action((ctx) => envUnsetCommand(ctx, name, opts))(opts));

  const webhooks = program.command('webhooks')
    .description('a namespace\'s webhooks: signed CloudEvents on every deployment event (docs/webhooks.md)')
    .addHelpText('after', `
Events: requested, started, step, switched, succeeded, failed, undeployed. Each is POSTed as a
CloudEvent (structured JSON) signed with the webhook's secret (X-Cutover-Signature), retried with
backoff, in order per deployment. Needs credentials for the namespace.

Examples:
  $ cutover webhooks add shop https://ci.example.com/hooks/cutover --event succeeded,failed
  $ cutover webhooks list shop
  $ cutover webhooks deliveries shop wh_0123456789abcdef
  $ cutover webhooks remove shop wh_0123456789abcdef`);
  webhooks.command('list')
    .description('list the namespace\'s webhooks (never their secrets)')
    .argument('<namespace>', 'namespace', parseNamespaceOption)
    .action(async (namespace: string, opts: CommonOptions) => action((ctx) => webhooksListCommand(ctx, namespace))(opts));
  webhooks.command('add')
    .description('subscribe URL to the namespace\'s deployment events; prints the signing secret once')
    .argument('<namespace>', 'namespace', parseNamespaceOption)
    .argument('<url>', 'http:// or https:// receiver (no user:password in it)')
    .option('--app <apps...>', 'only these apps (repeat or comma-separate; default: all)')
    .option('--event <kinds...>', 'only these events: requested, started, step, switched, succeeded, failed, undeployed')
    .option('--description <text>', 'what the webhook is for')
    .action(async (namespace: string, url: string, opts: CommonOptions & { app?: string[]; event?: string[]; description?: string }) =>
      action((ctx) => webhooksAddCommand(ctx, namespace, url, opts))(opts));
  webhooks.command('remove')
    .description('remove a webhook with its pending deliveries')
    .argument('<namespace>', 'namespace', parseNamespaceOption)
    .argument('<id>', 'webhook id (wh_…)')
    .action(async (namespace: string, id: string, opts: CommonOptions) => action((ctx) => webhooksRemoveCommand(ctx, namespace, id))(opts));
  webhooks.command('deliveries')
    .description('the webhook\'s delivery log: pending first, then the newest finished (status, attempts, last error)')
    .argument('<namespace>', 'namespace', parseNamespaceOption)
    .argument('<id>', 'webhook id (wh_…)')
    .addOption(new Option('--last <n>', 'how many').argParser(parsePositiveInt))
    .action(async (namespace: string, id: string, opts: CommonOptions & { last?: number }) => action((ctx) => webhooksDeliveriesCommand(ctx, namespace, id, opts))(opts));

  const leaves = [...program.commands.filter((c) => c !== env && c !== webhooks), ...env.commands, ...webhooks.commands];
  for (const cmd of leaves) {
    // After each command's own options, so those come first in its help.
    commonOptions(cmd, WAITING_COMMANDS.has(cmd.name()) ? { timeoutMeaning: WAIT_TIMEOUT } : {});
    cmd.addHelpText('after', `\n${EXIT_CODES_SHORT}`);
  }
  // Every subcommand reports errors the same way and never exits the process itself.
  for (const cmd of [program, ...program.commands, ...env.commands, ...webhooks.commands]) {
    cmd.exitOverride().configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(errStyle.red(s)),
    }).showHelpAfterError(`(run "${commandPath(cmd)} --help" for usage)`).showSuggestionAfterError(true);
  }
  return program;
}

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Prints an error (human lines on stderr; with --json also the document on stdout); returns its exit code. */
export function reportError(io: CliIo, err: unknown, json: boolean, style: ReturnType<typeof makeStyle>): number {
  const cliError = err instanceof CliError
    ? err
    : new CliError(ExitCode.internal, `unexpected error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`, { hint: 'this is a bug in the cutover CLI; please report it with the command line' });
  io.stderr.write(`${formatError(cliError, style).join('\n')}\n`);
  if (json) {
    io.stdout.write(`${JSON.stringify({
      ok: false, exitCode: cliError.exitCode,
      error: { message: cliError.message, ...(cliError.hint ? { hint: cliError.hint } : {}), ...(cliError.problems.length ? { problems: cliError.problems } : {}), ...(cliError.options.status ? { status: cliError.options.status } : {}) },
    }, null, 2)}\n`);
  }
  return cliError.exitCode;
}

/** Commander's own outcomes: help and version are successes, every other complaint a usage error. */
export function exitCodeOfCommanderError(err: CommanderError): number {
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.success;
  return ExitCode.usage;
}

/** Runs the CLI on `argv` (without node and script) and returns the exit code; never exits itself. */
export async function runCli(argv: string[], io: CliIo, run: RunState = {}): Promise<number> {
  const result: CliResult = { exitCode: ExitCode.success };
  const program = buildProgram(io, run, result);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return result.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      const code = exitCodeOfCommanderError(err);
      // A script asked for JSON: it gets a document for usage errors too (the message went to stderr).
      if (code !== ExitCode.success && argv.includes('--json')) {
        io.stdout.write(`${JSON.stringify({ ok: false, exitCode: code, error: { message: err.message.replace(/^error: /, '') } }, null, 2)}\n`);
      }
      return code;
    }
    return reportError(io, err, argv.includes('--json'), makeStyle(false));
  }
}
