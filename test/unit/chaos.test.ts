import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FaultLog, seededRandom } from '../support/chaos.js';

describe('chaos helpers (test support)', () => {
  it('seededRandom: the same seed gives the same sequence; values stay in range', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const seqA = Array.from({ length: 100 }, () => a.next());
    assert.deepEqual(seqA, Array.from({ length: 100 }, () => b.next()));
    assert.notDeepEqual(seqA, Array.from({ length: 100 }, () => seededRandom(43).next()));
    for (const x of seqA) assert.ok(x >= 0 && x < 1);
    const r = seededRandom(7);
    const ints = Array.from({ length: 1000 }, () => r.int(2, 5));
    assert.deepEqual([...new Set(ints)].sort(), [2, 3, 4, 5]);
    assert.equal(r.seed, 7);
    const picked = new Set(Array.from({ length: 200 }, () => r.pick(['a', 'b', 'c'])));
    assert.equal(picked.size, 3);
    assert.throws(() => r.pick([]));
    assert.throws(() => seededRandom(1.5));
  });

  it('FaultLog: records actions with times, durations and errors', async () => {
    const log = new FaultLog();
    log.note('kill replica', 'replica-1');
    assert.equal(await log.run('pause etcd', '50 ms', async () => {
      await new Promise((r) => setTimeout(r, 50));
      return 'done';
    }), 'done');
    await assert.rejects(log.run('restart API server', '', async () => { throw new Error('boom\nmore'); }), /boom/);
    assert.deepEqual(log.counts(), { 'kill replica': 1, 'pause etcd': 1, 'restart API server': 1 });
    const [kill, pause, restart] = log.records;
    assert.equal(kill!.durationMs, undefined);
    assert.ok(pause!.durationMs! >= 45, `duration ${pause!.durationMs}`);
    assert.equal(restart!.error, 'boom');
    assert.match(log.lines()[1]!, /^\+\d+\.\d{3}s pause etcd 50 ms \(\d+ ms\)$/);
    assert.match(log.toString(), /restart API server \(\d+ ms\) FAILED: boom$/);
  });
});
