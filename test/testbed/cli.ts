// npm run testbed -- up | down | status | install
import { relative } from 'node:path';
import { REPO_ROOT, loadConfig } from './config.js';
import { ensureBinaries } from './binaries.js';
import { down, status, up } from './testbed.js';
import { TRAEFIK, ensureTraefikBinary, traefikCrdSet } from './traefik.js';

const usage = 'usage: npm run testbed -- up [--clusters 1|2] | down [--keep-logs] [--cluster 2] | status | install [traefik]';

/** `--clusters 2` / `--clusters=2` (also `--cluster`). */
function flagValue(args: string[], names: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    for (const n of names) {
      if (a === n) return args[i + 1] ?? '';
      if (a.startsWith(`${n}=`)) return a.slice(n.length + 1);
    }
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'up': {
      const t = Date.now();
      const n = flagValue(rest, ['--clusters', '--cluster']);
      if (n !== undefined && n !== '1' && n !== '2') throw new Error(`--clusters ${n}: must be 1 or 2\n${usage}`);
      const { state, alreadyUp } = await up(n ? { clusters: n === '2' ? 2 : 1 } : {});
      const rel = (f: string) => relative(REPO_ROOT, f) || f;
      process.stdout.write([
        alreadyUp ? 'The test bed was already up.' : `The test bed is up (${((Date.now() - t) / 1000).toFixed(1)} s).`,
        '',
        'Use it from a shell:',
        `  set -a; . ${rel(state.envFile)}; set +a      # KUBECONFIG, CUTOVER_TESTBED_* (see docs/testbed.md)`,
        '  "$CUTOVER_TESTBED_KUBECTL" get nodes',
        'or from node:  node --env-file=' + rel(state.envFile) + ' ...',
        '',
        `  kubeconfig:        ${state.kubeconfig}`,
        `  API server:        ${state.apiserverUrl}`,
        `  fake pods socket:  ${state.fakePodsSocket}`,
        ...(state.traefik ? [
          `  traefik:           ${state.traefik.url}  (curl -H 'Host: app.example.test' ${state.traefik.url}/)`,
          `  traefik API/ping:  ${state.traefik.apiUrl}/ping`,
          `  IngressClass ${TRAEFIK.ingressClass}, GatewayClass ${TRAEFIK.gatewayClass}, Gateway ${TRAEFIK.gatewayNamespace}/${TRAEFIK.gatewayName} (listener ${TRAEFIK.listenerName})`,
        ] : []),
        ...(state.cluster2 ? [
          '',
          'cluster 2 (Traefik serves cluster 1 only):',
          `  kubeconfig:        ${state.cluster2.kubeconfig}   (CUTOVER_TESTBED_CLUSTER2_KUBECONFIG)`,
          `  API server:        ${state.cluster2.apiserverUrl}`,
          `  pods:              ${state.cluster2.podCidr}, services ${state.cluster2.serviceCidr}, nodes ${state.cluster2.nodes.join(', ')}`,
          '',
        ] : []),
        `  logs:              ${rel(state.config.dir)}/logs/`,
        '  stop with:         npm run testbed -- down',
        '',
      ].join('\n'));
      return 0;
    }
    case 'down': {
      const c = flagValue(rest, ['--cluster', '--clusters']);
      if (c !== undefined && c !== '2') throw new Error(`down --cluster ${c}: only cluster 2 can be taken down alone\n${usage}`);
      await down({ keepLogs: rest.includes('--keep-logs'), ...(c === '2' ? { cluster: 2 as const } : {}) });
      return 0;
    }
    case 'install': {
      // What `up` fetches or builds, without starting anything (CI, or to warm a machine's caches).
      const t = Date.now();
      const cfg = loadConfig();
      if (rest[0] !== 'traefik') await ensureBinaries();
      const traefik = await ensureTraefikBinary({ ...(cfg.traefikBinDir ? { dir: cfg.traefikBinDir } : {}) });
      const crds = await traefikCrdSet();
      process.stdout.write([
        `installed in ${((Date.now() - t) / 1000).toFixed(1)} s:`,
        `  traefik: ${traefik}`,
        `  CRDs (${crds.key}): ${crds.files.length} files from the Go module cache`,
        '',
      ].join('\n'));
      return 0;
    }
    case 'status': {
      const r = await status();
      if (!r.state) {
        process.stdout.write(`The test bed is down${r.netns ? ' (but its network namespace exists: run down)' : ''}.\n`);
        return 1;
      }
      const rows = r.components.map((c) => [
        c.name,
        c.pid === undefined ? '-' : String(c.pid),
        c.running ? 'running' : c.pid === undefined ? 'not started' : 'DEAD',
        c.rssMiB === undefined ? '-' : `${c.rssMiB} MiB`,
        c.health === true ? 'ok' : `NOT OK: ${c.health}`,
        c.endpoint,
      ]);
      const header = ['component', 'pid', 'process', 'rss', 'health', 'endpoint'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
      const fmt = (row: string[]) => row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ');
      const totalRss = r.components.reduce((s, c) => s + (c.rssMiB ?? 0), 0);
      process.stdout.write([
        fmt(header),
        ...rows.map(fmt),
        `network namespace ${r.state.network?.netns ?? r.state.config.netns}: ${r.netns ? 'present' : 'MISSING'}`,
        r.state.traefik
          ? `traefik ${r.state.traefik.version}: ${r.state.traefik.url} (IngressClass ${TRAEFIK.ingressClass}, Gateway ${TRAEFIK.gatewayNamespace}/${TRAEFIK.gatewayName})`
          : 'traefik: NOT on this bed yet (npm run testbed -- up adds it without a rebuild)',
        r.state.cluster2
          ? `cluster 2: ${r.state.cluster2.ready ? '' : 'NOT READY, '}${r.state.cluster2.apiserverUrl}, pods ${r.state.cluster2.podCidr}, services ${r.state.cluster2.serviceCidr}, ` +
            `etcd prefix ${r.state.cluster2.etcdPrefix}, kubeconfig ${r.state.cluster2.kubeconfig}; rss of its components ` +
            `${r.components.filter((c) => c.name.startsWith('c2-')).reduce((s, c) => s + (c.rssMiB ?? 0), 0)} MiB`
          : 'cluster 2: not on this bed (npm run testbed -- up --clusters 2 adds it)',
        `total rss: ${totalRss} MiB`,
        r.up ? 'The test bed is up.' : r.state.ready ? 'The test bed is NOT healthy.' : 'The test bed is not (fully) up.',
        '',
      ].join('\n'));
      return r.up ? 0 : 1;
    }
    default:
      process.stderr.write(`${usage}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`testbed: ${err.message}\n`);
    process.exit(1);
  },
);
