/**
 * cutover-admin: key management straight on etcd, with cutover's own configuration (the same
 * CUTOVER_* environment: etcd endpoints and prefix, key-encryption key). For bootstrapping the
 * first administrator key and for operators; the REST endpoints /admin/keys do the same for
 * administrators over the API. Every change is written to the audit trail (namespace _cluster).
 *
 *   npm run admin -- keys create --team T --namespaces a,b [--expires 90d] [--description TEXT] [--json]
 *   npm run admin -- keys list [--team T] [--json]
 *   npm run admin -- keys revoke ID
 *   npm run admin -- import-amdatu --from http://ETCD_V2:2379 [--dry-run] [--json]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { ApiKeyAdmin, KeyEncryptionKeyError, KeyInputError, type ApiKeyInfo } from '../auth/api-keys.js';
import { CLUSTER_AUDIT_NAMESPACE } from '../auth/caller.js';
import { loadKeyEncryptionKeys } from '../auth/settings.js';
import { ApiKeyStore } from '../store/api-keys.js';
import { AuditStore } from '../store/audit.js';
import { EtcdStore } from '../store/etcd.js';
import { StoreUnavailableError } from '../store/kv.js';
import { runImportAmdatu, TargetLayoutError } from './amdatu/command.js';
import { SourceError } from './amdatu/etcd-v2.js';
import { formatReport } from './amdatu/report.js';

const USAGE = `usage:
  cutover-admin keys create --team TEAM --namespaces NS[,NS…]|* [--expires 90d|ISO-TIME] [--description TEXT] [--json]
  cutover-admin keys list [--team TEAM] [--json]
  cutover-admin keys revoke KEY-ID
  cutover-admin import-amdatu --from http://ETCD:2379 [--dry-run] [--json]
      copies the Amdatu deployer's etcd v2 data (descriptors, deployment records with logs and
      health data, environment values) into cutover's etcd; idempotent; see docs/migrating-from-amdatu.md.
      Exit 0: done; 3: done, but some items were bad and not imported (listed); 1: failed.

Uses the CUTOVER_* environment of cutover itself (CUTOVER_ETCD_ENDPOINTS, CUTOVER_ETCD_PREFIX,
CUTOVER_KEY_ENCRYPTION_KEY or CUTOVER_KEY_ENCRYPTION_KEY_FILE). See docs/security.md.`;

class UsageError extends Error {}

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`cutover-admin: ${line}\n`);

function operator(): string {
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // no passwd entry (containers)
  }
  return `cli:${user}@${os.hostname()}`;
}

function describe(key: ApiKeyInfo): string {
  return [
    key.id, key.team, key.namespaces.join(','), key.status,
    `created ${key.created} by ${key.createdBy}`,
    key.expires ? `expires ${key.expires}` : 'no expiry',
    ...(key.revoked ? [`revoked ${key.revoked} by ${key.revokedBy ?? '?'}`] : []),
    ...(key.description ? [JSON.stringify(key.description)] : []),
  ].join('  ');
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      team: { type: 'string' },
      namespaces: { type: 'string' },
      expires: { type: 'string' },
      description: { type: 'string' },
      json: { type: 'boolean', default: false },
      from: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [group, command, ...rest] = positionals;
  if (values.help || group === undefined) {
    out(USAGE);
    return group === undefined && !values.help ? 2 : 0;
  }
  if (group === 'import-amdatu') {
    if (command !== undefined) throw new UsageError(`import-amdatu takes no arguments: ${positionals.slice(1).join(' ')}`);
    if (!values.from) throw new UsageError('import-amdatu needs --from URL: the etcd client endpoint of the original deployer (with its v2 API)');
    const report = await runImportAmdatu({ from: values.from, dryRun: values['dry-run'] }, loadConfig());
    if (values.json) out(JSON.stringify(report));
    else for (const line of formatReport(report)) out(line);
    return report.counts.bad > 0 ? 3 : 0;
  }
  if (group !== 'keys' || !['create', 'list', 'revoke'].includes(command ?? '')) throw new UsageError(`unknown command: ${positionals.join(' ')}`);

  const config = loadConfig();
  const kv = new EtcdStore({ endpoints: config.etcdEndpoints, prefix: config.etcdPrefix, timeoutMs: config.etcdTimeoutMs });
  try {
    const store = new ApiKeyStore(kv);
    const needsKek = command === 'create';
    const keks = needsKek ? loadKeyEncryptionKeys(config) : [];
    if (needsKek && !keks) throw new UsageError('no key-encryption key: set CUTOVER_KEY_ENCRYPTION_KEY_FILE or CUTOVER_KEY_ENCRYPTION_KEY as for cutover itself');
    const admin = new ApiKeyAdmin(store, keks ?? []);
    const audit = new AuditStore(kv, { keepPerNamespace: config.auditKeepPerNamespace });
    const actor = { identity: operator(), auth: 'cli' };
    const record = (action: string, keyId: string, line: string) => audit.append({
      namespace: CLUSTER_AUDIT_NAMESPACE, action, method: 'CLI', path: line, actor, target: { keyId }, status: 0, outcome: 'success',
    });

    if (command === 'create') {
      if (!values.team || !values.namespaces) throw new UsageError('keys create needs --team and --namespaces');
      const created = await admin.create({
        team: values.team, namespaces: values.namespaces,
        ...(values.expires ? { expires: values.expires } : {}),
        ...(values.description ? { description: values.description } : {}),
      }, actor.identity);
      await record('apikey.create', created.key.id, `cutover-admin keys create --team ${values.team} --namespaces ${values.namespaces}`);
      if (values.json) {
        out(JSON.stringify(created));
      } else {
        out(`created API key ${created.key.id} for team ${created.key.team} (namespaces ${created.key.namespaces.join(',')}; ${created.key.expires ? `expires ${created.key.expires}` : 'no expiry'})`);
        out('secret (shown only now; store it in the pipeline\'s secret store):');
        out(created.secret);
      }
    } else if (command === 'list') {
      const list = await admin.list(values.team);
      if (values.json) out(JSON.stringify(list));
      else if (list.length === 0) out('no API keys');
      else for (const key of list) out(describe(key));
    } else {
      const id = rest[0];
      if (!id) throw new UsageError('keys revoke needs a key id');
      const revoked = await admin.revoke(id, actor.identity);
      if (!revoked) {
        err(`no API key ${id}`);
        return 1;
      }
      await record('apikey.revoke', revoked.id, `cutover-admin keys revoke ${revoked.id}`);
      if (values.json) out(JSON.stringify(revoked));
      else out(`revoked: ${describe(revoked)}`);
    }
    await audit.close();
    return 0;
  } finally {
    await kv.close();
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code), (e: unknown) => {
  if (e instanceof UsageError || (e instanceof Error && e.name === 'TypeError' && /ERR_PARSE_ARGS/.test((e as NodeJS.ErrnoException).code ?? ''))) {
    err((e as Error).message);
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  if (e instanceof SourceError || e instanceof TargetLayoutError) {
    err(e.message);
    process.exit(1);
  }
  if (e instanceof StoreUnavailableError) {
    err(`cutover's etcd (CUTOVER_ETCD_ENDPOINTS) did not answer: ${e.message}`);
    process.exit(1);
  }
  if (e instanceof ConfigError || e instanceof KeyInputError || e instanceof KeyEncryptionKeyError) {
    err(e.message);
    process.exit(2);
  }
  err(`failed: ${(e as Error).message}`);
  process.exit(1);
});
