#!/usr/bin/env node
/**
 * `cutover`: the command line for pipelines and people (docs/cli.md). Everything is in
 * program.ts; this file only wires the process: arguments, streams, exit code, Ctrl-C.
 */
import { ExitCode } from './exit-codes.js';
import { processIo } from './io.js';
import { runCli } from './program.js';
import type { RunState } from './context.js';

const run: RunState = {};

// `cutover status … | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// `on` with a guard rather than `once`: a second SIGINT (sent to the whole process group and also
// passed on by a parent such as scripts/runtime.mjs) must not kill the process before the note is out.
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) return;
  interrupted = true;
  run.progress?.close();
  process.stderr.write(`\ninterrupted${run.interruptNote ? `: ${run.interruptNote}` : ''}\n`);
  process.exit(ExitCode.interrupted);
});

runCli(process.argv.slice(2), processIo(), run).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`cutover: unexpected error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = ExitCode.internal;
  },
);
