import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuditStore, type NewAuditEntry } from '../../src/store/audit.js';
import { keys } from '../../src/store/keys.js';
import { MemoryKv } from '../support/memory-kv.js';
import { waitFor } from '../support/wait.js';

const entry = (app: string): NewAuditEntry => ({
  namespace: 'ns', app, action: 'descriptor.create', method: 'POST', path: '/descriptors/?namespace=ns',
  actor: { identity: 'me', auth: 'jwt' }, status: 201, outcome: 'success',
});

/** A count of the namespace's entries, a list and a delete after every write made a busy namespace's writes cost four etcd calls. */
describe('audit retention', () => {
  it('prunes once for a burst of writes, and keeps exactly the newest', async () => {
    const kv = new MemoryKv();
    let counts = 0;
    const count = kv.count.bind(kv);
    kv.count = async (prefix: string) => {
      counts++;
      return count(prefix);
    };
    const audit = new AuditStore(kv, { keepPerNamespace: 3, pruneDelayMs: 100 });
    for (let i = 0; i < 10; i++) await audit.append(entry(`app-${i}`));
    const left = await waitFor('the trail to be pruned to 3', async () => {
      const { entries } = await kv.list(keys.auditOf('ns'));
      return entries.length === 3 ? entries : undefined;
    }, { timeoutMs: 5000, intervalMs: 20 });
    assert.deepEqual(left.map((e) => JSON.parse(e.value).app).sort(), ['app-7', 'app-8', 'app-9']);
    // Long enough for a second prune, were one due: the writes during the wait were all covered.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(counts, 1, 'one prune for the ten writes');
    await audit.close();
  });

  it('close() prunes what is waiting at once', async () => {
    const kv = new MemoryKv();
    const audit = new AuditStore(kv, { keepPerNamespace: 2, pruneDelayMs: 600_000 });
    for (let i = 0; i < 5; i++) await audit.append(entry(`app-${i}`));
    assert.equal((await kv.list(keys.auditOf('ns'))).entries.length, 5, 'nothing pruned before the delay');
    await audit.close();
    assert.equal((await kv.list(keys.auditOf('ns'))).entries.length, 2);
  });
});
