import type { DeploymentStatus, PodHealth } from '../domain/deployment.js';
import type { OutputStream } from './io.js';
import { clockTime, formatDuration, formatPodHealth, healthSummary, plainLine, type Style } from './format.js';

/**
 * How a command shows what happens: a live task list with a spinner on a terminal, timestamped
 * lines in CI (no TTY), nothing on stdout with --json (notices go to stderr there).
 */
export interface Progress {
  /** A result or fact, e.g. "deployment 3f6c… started". */
  info(text: string, tag?: string): void;
  /** Lines that belong to the previous info (a diff, a table). */
  detail(lines: string[]): void;
  /** A status/step change of the deployment being followed (time: the server's). */
  step(time: string, status: DeploymentStatus, step: string): void;
  /** A line of the deployment's log. */
  log(time: string, message: string): void;
  /** The latest health data of every pod; only changes are shown. */
  health(pods: PodHealth[]): void;
  /** Reconnects, retries, fallbacks: what the CLI itself is doing. */
  notice(text: string): void;
  /** The end of a followed deployment. */
  finish(ok: boolean, text: string): void;
  /** Stops timers (idempotent). */
  close(): void;
}

/** Health lines change only when a pod's verdict or reason does (the data refreshes every check). */
class HealthChanges {
  private readonly last = new Map<string, string>();

  changed(pods: PodHealth[]): PodHealth[] {
    return pods.filter((p) => {
      const key = `${p.healthy}|${p.statusCode ?? ''}|${p.healthy ? '' : p.reason}`;
      if (this.last.get(p.podName) === key) return false;
      this.last.set(p.podName, key);
      return true;
    });
  }
}

/** CI logs: one timestamped line per fact, in order, nothing redrawn. */
export class PlainProgress implements Progress {
  private readonly healthChanges = new HealthChanges();

  constructor(private readonly out: OutputStream, private readonly now: () => Date) {}

  private line(time: string | Date, tag: string, text: string): void {
    this.out.write(`${plainLine(time, tag, text)}\n`);
  }

  info(text: string, tag = 'info'): void {
    this.line(this.now(), tag, text);
  }

  detail(lines: string[]): void {
    for (const l of lines) this.out.write(`${l}\n`);
  }

  step(time: string, status: DeploymentStatus, step: string): void {
    this.line(time, 'step', status === 'DEPLOYING' || status === 'UNDEPLOYING' ? step : `${step} (${status})`);
  }

  log(time: string, message: string): void {
    this.line(time, 'log', message);
  }

  health(pods: PodHealth[]): void {
    for (const p of this.healthChanges.changed(pods)) this.line(p.checkedAt || this.now(), 'health', formatPodHealth(p));
  }

  notice(text: string): void {
    this.line(this.now(), 'notice', text);
  }

  finish(_ok: boolean, text: string): void {
    this.line(this.now(), 'result', text);
  }

  close(): void {}
}

/** --json: stdout carries only the final document; notices still reach a human on stderr. */
export class SilentProgress implements Progress {
  constructor(private readonly err: OutputStream, private readonly now: () => Date) {}
  info(_text: string): void {}
  detail(_lines: string[]): void {}
  step(_time: string, _status: DeploymentStatus, _step: string): void {}
  log(_time: string, _message: string): void {}
  health(_pods: PodHealth[]): void {}
  notice(text: string): void {
    this.err.write(`${plainLine(this.now(), 'notice', text)}\n`);
  }
  finish(_ok: boolean, _text: string): void {}
  close(): void {}
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FAILING_STEPS = new Set(['rolling-back', 'failed']);

/**
 * A terminal: finished steps stay as a task list (✔ step  duration), log lines scroll above a
 * spinner line that shows the current step, how long it has run and the pods' health.
 */
export class TtyProgress implements Progress {
  private current: { step: string; serverTime: string; startedAt: number } | undefined;
  private pods: PodHealth[] = [];
  private frame = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private spinnerShown = false;
  private readonly healthChanges = new HealthChanges();

  constructor(private readonly out: OutputStream, private readonly style: Style, private readonly nowMs: () => number = Date.now) {}

  private clearSpinner(): void {
    if (this.spinnerShown) this.out.write('\r\x1b[2K');
    this.spinnerShown = false;
  }

  private drawSpinner(): void {
    if (!this.current) return;
    const elapsed = formatDuration(this.nowMs() - this.current.startedAt);
    const health = this.current.step === 'health-checking' ? healthSummary(this.pods) : '';
    const frame = FRAMES[this.frame % FRAMES.length]!;
    const plain = `${frame} ${this.current.step} ${elapsed}${health ? `  ${health}` : ''}`;
    const columns = this.out.columns && this.out.columns > 10 ? this.out.columns : 80;
    // A line longer than the terminal wraps, and "\r" then redraws only its last part: cut it (unstyled).
    const text = plain.length >= columns
      ? plain.slice(0, columns - 1)
      : `${this.style.cyan(frame)} ${this.current.step} ${this.style.dim(elapsed)}${health ? `  ${health}` : ''}`;
    this.out.write(`\r\x1b[2K${text}`);
    this.spinnerShown = true;
  }

  /** Prints lines above the spinner and redraws it. */
  private print(lines: string[]): void {
    this.clearSpinner();
    for (const l of lines) this.out.write(`${l}\n`);
    this.drawSpinner();
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.frame++;
      this.drawSpinner();
    }, 100);
    this.timer.unref?.();
  }

  info(text: string): void {
    this.print([`${this.style.green('●')} ${text}`]);
  }

  detail(lines: string[]): void {
    this.print(lines);
  }

  step(time: string, _status: DeploymentStatus, step: string): void {
    if (this.current?.step === step) return;
    const lines: string[] = [];
    if (this.current) {
      const took = Date.parse(time) - Date.parse(this.current.serverTime);
      const mark = FAILING_STEPS.has(step) ? this.style.red('✖') : this.style.green('✔');
      lines.push(`${mark} ${this.current.step} ${this.style.dim(formatDuration(took))}`);
    }
    this.current = { step, serverTime: time, startedAt: this.nowMs() };
    this.print(lines);
    this.ensureTimer();
  }

  log(time: string, message: string): void {
    this.print([this.style.dim(`  ${clockTime(time)} │ ${message}`)]);
  }

  health(pods: PodHealth[]): void {
    this.pods = pods;
    const changed = this.healthChanges.changed(pods);
    this.print(changed.map((p) => `  ${p.healthy ? this.style.green('♥') : this.style.red('✗')} ${formatPodHealth(p)}`));
  }

  notice(text: string): void {
    this.print([this.style.yellow(`  ↻ ${text}`)]);
  }

  finish(ok: boolean, text: string): void {
    this.close();
    this.clearSpinner();
    this.out.write(`${ok ? this.style.green('✔') : this.style.red('✖')} ${this.style.bold(text)}\n`);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clearSpinner();
  }
}
