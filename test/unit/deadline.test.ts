import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Deadline, DeadlineExceeded, linkSignals, sleep, withDeadline } from '../../src/lib/deadline.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('deadline primitives', () => {
  it('fire on time while garbage collections run (a child process under --expose-gc, gc() every 10 ms)', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', 'test/unit/fixtures/deadlines-under-gc.ts'], { cwd: root, timeout: 30_000 });
    const lateness = JSON.parse(stdout.trim()) as Record<string, number | 'never'>;
    assert.deepEqual(Object.keys(lateness).sort(), ['after', 'at', 'linkedToDeadline', 'withDeadline']);
    for (const [what, late] of Object.entries(lateness)) {
      assert.notEqual(late, 'never', `${what} never fired`);
      assert.ok((late as number) >= -5 && (late as number) < 1000, `${what} fired ${late} ms late`);
    }
  });

  it('a Deadline aborts with DeadlineExceeded (name TimeoutError) and says it expired', async () => {
    const d = Deadline.after(20);
    await new Promise((r) => d.signal.addEventListener('abort', r, { once: true }));
    assert.ok(d.signal.reason instanceof DeadlineExceeded);
    assert.equal((d.signal.reason as Error).name, 'TimeoutError');
    assert.equal(d.expired, true);
  });

  it('a parent abort passes through with its own reason, and is not "expired"', () => {
    const parent = new AbortController();
    const d = Deadline.after(60_000, parent.signal);
    parent.abort(new Error('shutdown'));
    assert.equal(d.signal.aborted, true);
    assert.equal((d.signal.reason as Error).message, 'shutdown');
    assert.equal(d.expired, false);
    d.clear();
  });

  it('clear() stops the timer and detaches from the parent', async () => {
    const parent = new AbortController();
    const d = Deadline.after(30, parent.signal);
    d.clear();
    await sleep(60);
    parent.abort();
    assert.equal(d.signal.aborted, false);
  });

  it('withDeadline clears its timer when the work ends first, and aborts the work when it does not', async () => {
    assert.equal(await withDeadline(10_000, undefined, async () => 'done'), 'done'); // a leaked 10 s timer would hold the test open
    await assert.rejects(withDeadline(20, undefined, (s) => sleep(5_000, s)), (err: Error) => err.name === 'TimeoutError');
  });

  it('linkSignals follows any parent and can be disposed', () => {
    const a = new AbortController();
    const b = new AbortController();
    const link = linkSignals(a.signal, undefined, b.signal);
    b.abort('b');
    assert.equal(link.signal.reason, 'b');
    const other = linkSignals(a.signal);
    other.dispose();
    a.abort();
    assert.equal(other.signal.aborted, false);
  });
});

describe('no weak timers in src/', () => {
  it('AbortSignal.timeout() and AbortSignal.any() are not used outside src/lib/deadline.ts', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (path.endsWith('.ts') && !path.endsWith(join('lib', 'deadline.ts'))) {
          readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
            if (/AbortSignal\.(timeout|any)\s*\(/.test(line)) offenders.push(`${path.slice(root.length)}:${i + 1}`);
          });
        }
      }
    };
    walk(join(root, 'src'));
    assert.deepEqual(offenders, [], 'use Deadline / withDeadline / linkSignals from src/lib/deadline.ts (timers held strongly, cleared explicitly)');
  });
});
