import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { descriptorText, diffLines } from '../../ui/src/lib/diff.js';
import { backoffMs, isFinalClose, LogBuffer } from '../../ui/src/lib/log-buffer.js';
import { SseParser } from '../../ui/src/lib/sse.js';

/** The web UI's pure parts: descriptor diff, log resumption, server-sent-event parsing. */
describe('UI descriptor diff', () => {
  it('pairs changed lines and keeps common ones side by side', () => {
    const rows = diffLines('a\nb\nc\nd', 'a\nB\nc\nd\ne');
    assert.deepEqual(rows.map((r) => r.kind), ['same', 'changed', 'same', 'same', 'added']);
    assert.deepEqual(rows[1], { kind: 'changed', left: 'b', leftNo: 2, right: 'B', rightNo: 2 });
    assert.deepEqual(rows[4], { kind: 'added', right: 'e', rightNo: 5 });
  });

  it('reports removals, and nothing for equal texts', () => {
    assert.deepEqual(diffLines('x\ny\nz', 'x\nz').map((r) => r.kind), ['same', 'removed', 'same']);
    assert.ok(diffLines('same\ntext', 'same\ntext').every((r) => r.kind === 'same'));
  });

  it('compares descriptors without server-set fields and independent of key order', () => {
    const a = descriptorText({ id: '1', created: 'x', lastModified: 'y', appName: 'web', replicas: 2, podspec: { containers: [{ name: 'a', image: 'i:1' }] } });
    const b = descriptorText({ podspec: { containers: [{ image: 'i:1', name: 'a' }] }, replicas: 2, appName: 'web', id: '2', created: 'z', lastModified: 'w' });
    assert.equal(a, b);
    assert.doesNotMatch(a, /"id"|created|lastModified/);
    const changed = diffLines(a, descriptorText({ appName: 'web', replicas: 3, podspec: { containers: [{ name: 'a', image: 'i:1' }] } }));
    assert.deepEqual(changed.filter((r) => r.kind !== 'same').map((r) => (r.kind === 'changed' ? [r.left.trim(), r.right.trim()] : r.kind)), [['"replicas": 2', '"replicas": 3']]);
  });
});

describe('UI log buffer', () => {
  it('takes events in order and drops repeats, so a resumed stream neither loses nor doubles a line', () => {
    const log = new LogBuffer();
    assert.equal(log.accept(1, { time: 't1', message: 'one' }), true);
    assert.equal(log.accept(2), true); // a status event: counted, not a line
    assert.equal(log.accept(3, { time: 't3', message: 'three' }), true);
    // The reconnect resumes from lastSeq; a frame the server sends again is dropped.
    assert.equal(log.lastSeq, 3);
    assert.equal(log.accept(3, { time: 't3', message: 'three' }), false);
    assert.equal(log.accept(4, { time: 't4', message: 'four' }), true);
    assert.deepEqual(log.lines.map((l) => l.message), ['one', 'three', 'four']);
    assert.equal(log.gaps, 0);
    log.accept(6, { time: 't6', message: 'six' });
    assert.equal(log.gaps, 1, 'a gap is counted, to be shown');
  });

  it('knows final closes from resumable ones, and backs off to at most 10 s', () => {
    assert.equal(isFinalClose(1000, 'DEPLOYED'), true);
    assert.equal(isFinalClose(1000, 'FAILURE'), true);
    assert.equal(isFinalClose(1001, 'server shutting down; resume with from=12'), false);
    assert.equal(isFinalClose(1006, ''), false);
    assert.deepEqual([0, 1, 2, 3, 10].map(backoffMs), [500, 1000, 2000, 4000, 10_000]);
  });
});

describe('UI server-sent-event parser', () => {
  it('splits events across chunk boundaries and skips keep-alive comments', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('event: snapshot\ndata: {"a"'), []);
    assert.deepEqual(parser.push(':1}\n\n: keep-alive\n\nevent: app\r\ndata: 2\r\n\r\n'), [
      { event: 'snapshot', data: '{"a":1}' },
      { event: 'app', data: '2' },
    ]);
    assert.deepEqual(parser.push('data: a\ndata: b\n\n'), [{ event: 'message', data: 'a\nb' }]);
  });
});
