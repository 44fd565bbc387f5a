import type { Config } from '../../config.js';
import { EtcdDescriptorStore } from '../../store/descriptors.js';
import { DeploymentStore, LAYOUT_VERSION } from '../../store/deployments.js';
import { EnvironmentStore } from '../../store/environment.js';
import { EtcdStore } from '../../store/etcd.js';
import { keys } from '../../store/keys.js';
import { EtcdV2Reader, parseSourceUrl } from './etcd-v2.js';
import { importOriginalData, type ImportReport } from './import.js';
import { ORIGINAL_DIRS, readOriginalLayout, type OriginalTrees } from './layout.js';

export interface ImportCommandOptions {
  from: string;
  dryRun: boolean;
}

/** cutover's etcd holds data of an older layout: start cutover once so it migrates, then import. */
export class TargetLayoutError extends Error {}

/**
 * `cutover-admin import-amdatu --from URL [--dry-run]`: reads the original's etcd v2 data, then
 * imports it into cutover's etcd (the CUTOVER_* configuration). The source is read completely
 * first, so a bad --from fails before anything is written.
 */
export async function runImportAmdatu(options: ImportCommandOptions, config: Config): Promise<ImportReport> {
  const reader = new EtcdV2Reader(parseSourceUrl(options.from));
  let trees: OriginalTrees;
  let etcdVersion: string;
  try {
    etcdVersion = await reader.serverVersion();
    trees = {};
    for (const [name, dir] of Object.entries(ORIGINAL_DIRS) as Array<[keyof typeof ORIGINAL_DIRS, string]>) trees[name] = await reader.tree(dir);
  } finally {
    await reader.close();
  }
  const data = readOriginalLayout(trees);

  const kv = new EtcdStore({ endpoints: config.etcdEndpoints, prefix: config.etcdPrefix, timeoutMs: config.etcdTimeoutMs });
  try {
    const layout = await kv.get(keys.layout());
    if (layout && layout.value !== LAYOUT_VERSION) {
      throw new TargetLayoutError(`cutover's etcd holds data of key layout ${layout.value} (this cutover writes ${LAYOUT_VERSION}): start cutover once so it migrates its data, then import`);
    }
    return await importOriginalData(data, {
      kv, descriptors: new EtcdDescriptorStore(kv), deployments: new DeploymentStore(kv), environment: new EnvironmentStore(kv),
    }, { dryRun: options.dryRun, retainRecords: config.retainRecords, sourceName: options.from, etcdVersion });
  } finally {
    await kv.close();
  }
}
