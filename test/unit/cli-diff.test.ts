import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { diffDescriptors } from '../../src/cli/diff.js';
import { formatChanges, makeStyle, summariseChanges } from '../../src/cli/format.js';

const stored = {
  id: 'a1', namespace: 'shop', appName: 'web', newVersion: '#', created: '2026-01-01T00:00:00Z', lastModified: '2026-01-02T00:00:00Z',
  replicas: 2, useHealthCheck: true, frontend: 'web.example.com', additionHttpHeaders: [],
  podspec: { containers: [{ name: 'app', image: 'web:1', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] }] },
};

describe('cli: descriptor diff', () => {
  it('finds nothing between a descriptor and itself, ignoring server-managed fields', () => {
    const same = { ...structuredClone(stored), id: 'other', created: 'x', lastModified: 'y' };
    assert.deepEqual(diffDescriptors(stored, same), []);
  });

  it('reports added, changed and removed field paths, nested and in lists', () => {
    const desired = structuredClone(stored) as Record<string, any>;
    desired['replicas'] = 3;
    delete desired['frontend'];
    desired['drainSeconds'] = 10;
    desired['podspec'].containers[0].image = 'web:2';
    desired['podspec'].containers[0].env.pop();
    desired['podspec'].containers[0].env[0].value = '9';
    desired['podspec'].containers.push({ name: 'sidecar', image: 'proxy:1' });
    const changes = diffDescriptors(stored, desired);
    assert.deepEqual(changes, [
      { kind: 'added', path: 'drainSeconds', after: 10 },
      { kind: 'removed', path: 'frontend', before: 'web.example.com' },
      { kind: 'changed', path: 'podspec.containers[0].env[0].value', before: '1', after: '9' },
      { kind: 'removed', path: 'podspec.containers[0].env[1]', before: { name: 'B', value: '2' } },
      { kind: 'changed', path: 'podspec.containers[0].image', before: 'web:1', after: 'web:2' },
      { kind: 'added', path: 'podspec.containers[1]', after: { name: 'sidecar', image: 'proxy:1' } },
      { kind: 'changed', path: 'replicas', before: 2, after: 3 },
    ]);
    assert.equal(summariseChanges(changes), '2 added, 3 changed, 2 removed');
  });

  it('treats a type change as a change and quotes keys that are not identifiers', () => {
    const a = { podspec: { nodeSelector: { 'kubernetes.io/os': 'linux' } }, replicas: 1 };
    const b = { podspec: { nodeSelector: { 'kubernetes.io/os': 'windows' } }, replicas: '1' };
    assert.deepEqual(diffDescriptors(a, b).map((c) => c.path), ['podspec.nodeSelector["kubernetes.io/os"]', 'replicas']);
  });

  it('formats each change on its own line with +, ~ and -', () => {
    const lines = formatChanges(diffDescriptors({ a: 1, b: 'x' }, { a: 2, c: true }), makeStyle(false));
    assert.deepEqual(lines, ['  ~ a: 1 → 2', '  - b: "x"', '  + c: true']);
  });
});
