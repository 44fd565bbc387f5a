/**
 * etcd's own view of its size, through its HTTP/JSON gateway (POST /v3/...), independent of
 * cutover's etcd client (src/store/etcd.ts): maintenance status (DB size), compaction, defragmentation, and a
 * paged scan of every key under a prefix at one revision. Loopback only.
 */

export interface EtcdStatus {
  /** Store revision: one per write transaction since etcd started. */
  revision: number;
  /** Size of the backend database file, free pages included. */
  dbSize: number;
  /** Bytes of the database actually in use (what a defragment would shrink dbSize to). */
  dbSizeInUse: number;
}

export interface ScannedKey {
  key: string;
  keyBytes: number;
  valueBytes: number;
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

/** The smallest key after every key that starts with `prefix` (etcd's range_end of a prefix). */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the key space
}

export class EtcdGateway {
  constructor(private readonly endpoint: string) {
    const host = new URL(endpoint).hostname;
    if (host !== '127.0.0.1' && host !== 'localhost' && host !== '[::1]') throw new Error(`EtcdGateway is for loopback etcds only, not ${endpoint}`);
  }

  async status(): Promise<EtcdStatus> {
    const res = await this.post<{ header: { revision: string }; dbSize: string; dbSizeInUse?: string }>('/v3/maintenance/status', {});
    return { revision: Number(res.header.revision), dbSize: Number(res.dbSize), dbSizeInUse: Number(res.dbSizeInUse ?? res.dbSize) };
  }

  /** Compacts the history up to `revision` and waits until the compaction is physically applied. */
  async compact(revision: number): Promise<void> {
    await this.post('/v3/kv/compaction', { revision: String(revision), physical: true });
  }

  async defragment(): Promise<void> {
    await this.post('/v3/maintenance/defragment', {});
  }

  /** Every key under `prefix`, read in pages at one revision; sizes are of the full key (prefix included) and value. */
  async scan(prefix: string, pageSize = 2000): Promise<ScannedKey[]> {
    const out: ScannedKey[] = [];
    const end = b64(prefixEnd(prefix));
    let from: Buffer = Buffer.from(prefix);
    let revision: string | undefined;
    for (;;) {
      const res = await this.post<{ header: { revision: string }; kvs?: Array<{ key: string; value?: string }>; more?: boolean }>('/v3/kv/range', {
        key: b64(from), range_end: end, limit: String(pageSize), ...(revision ? { revision } : {}),
      });
      revision ??= res.header.revision;
      const kvs = res.kvs ?? [];
      for (const kv of kvs) {
        const key = Buffer.from(kv.key, 'base64');
        out.push({ key: key.toString('utf8'), keyBytes: key.length, valueBytes: Buffer.from(kv.value ?? '', 'base64').length });
      }
      const last = kvs[kvs.length - 1];
      if (!res.more || !last) return out;
      from = Buffer.concat([Buffer.from(last.key, 'base64'), Buffer.from([0])]);
    }
  }

  private async post<T>(path: string, body: unknown): Promise<T> {
    const res = await fetch(`${this.endpoint}${path}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return JSON.parse(text) as T;
  }
}
