import { CutoverApi } from './api.js';
import { CutoverClient } from './client.js';
import { colourWanted, formatDuration, makeStyle, type Style } from './format.js';
import type { CliIo } from './io.js';
import { PlainProgress, SilentProgress, TtyProgress, type Progress } from './progress.js';
import { DEFAULT_TIMEOUT, parseTimeoutOption, resolveConnection, type ConnectionFlags } from './settings.js';

/** The options every command has (see addCommonOptions in program.ts). */
export interface CommonOptions extends ConnectionFlags {
  json?: boolean;
  color?: boolean;
  retry?: boolean;
  timeout?: number;
}

/** What a command runs with: the API, how to report, and the command's deadline. */
export interface CommandContext {
  io: CliIo;
  api: CutoverApi;
  client: CutoverClient;
  progress: Progress;
  style: Style;
  json: boolean;
  /** On a terminal: live progress with a spinner. */
  interactive: boolean;
  timeoutMs: number;
  timeoutLabel: string;
  /** Writes the one JSON document of --json mode. */
  emitJson(document: unknown): void;
  /** What to tell the user if they interrupt (e.g. which deployment goes on). */
  setInterruptNote(note: string | undefined): void;
}

export interface RunState {
  interruptNote?: string | undefined;
  progress?: Progress | undefined;
}

export function createContext(io: CliIo, options: CommonOptions, run: RunState): CommandContext {
  const connection = resolveConnection(options, io.env);
  const json = options.json === true;
  const interactive = !json && io.stdout.isTTY === true;
  const style = makeStyle(!json && colourWanted(io.stdout.isTTY === true, io.env, options.color !== false));
  const timeoutMs = options.timeout ?? parseTimeoutOption(DEFAULT_TIMEOUT);
  const timeoutLabel = formatDuration(timeoutMs);
  const now = () => io.now();
  const progress: Progress = json ? new SilentProgress(io.stderr, now) : interactive ? new TtyProgress(io.stdout, style) : new PlainProgress(io.stdout, now);
  run.progress = progress;
  const client = new CutoverClient({
    baseUrl: connection.baseUrl,
    credentials: connection.credentials,
    retry: options.retry !== false,
    deadline: io.now().getTime() + timeoutMs,
    onRetry: (n) => progress.notice(`${n.action}: ${n.reason}; retrying in ${formatDuration(n.delayMs)} (attempt ${n.attempt + 1})`),
  });
  return {
    io, client, api: new CutoverApi(client), progress, style, json, interactive, timeoutMs, timeoutLabel,
    emitJson: (document) => io.stdout.write(`${JSON.stringify(document, null, 2)}\n`),
    setInterruptNote: (note) => {
      run.interruptNote = note;
    },
  };
}
