// Certificates and the kubeconfig, made with the openssl CLI (present on Debian 12). EC P-256 keys
// because they are generated in milliseconds; the API server accepts them for TLS, client certificates
// and service-account token signing (ES256).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './commands.js';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = '3650';

export function pkiPaths(dir: string): Pki {
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    apiserverCert: join(dir, 'apiserver.crt'),
    apiserverKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    serviceAccountKey: join(dir, 'sa.key'),
    serviceAccountPub: join(dir, 'sa.pub'),
  };
}

/** Creates a fresh CA, API server serving cert, admin client cert (system:masters) and SA key pair. */
export async function createPki(dir: string, apiserverSans: string[], caName = 'cutover-testbed-ca'): Promise<Pki> {
  const p = pkiPaths(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await run('openssl', [
    'req', '-x509', ...EC, '-days', DAYS, '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', p.caKey, '-out', p.caCert,
  ]);
  await Promise.all([
    signLeaf(p, 'apiserver', '/CN=kube-apiserver',
      [`subjectAltName=${apiserverSans.join(',')}`, 'extendedKeyUsage=serverAuth',
        'keyUsage=critical,digitalSignature,keyEncipherment']),
    // O=system:masters is the built-in superuser group: the control plane components and tests use it.
    signLeaf(p, 'admin', '/O=system:masters/CN=cutover-testbed-admin',
      ['extendedKeyUsage=clientAuth', 'keyUsage=critical,digitalSignature,keyEncipherment']),
    (async () => {
      await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p.serviceAccountKey]);
      await run('openssl', ['pkey', '-in', p.serviceAccountKey, '-pubout', '-out', p.serviceAccountPub]);
    })(),
  ]);
  return p;
}

async function signLeaf(p: Pki, name: string, subject: string, extensions: string[]): Promise<void> {
  const key = join(p.dir, `${name}.key`);
  const csr = join(p.dir, `${name}.csr`);
  const ext = join(p.dir, `${name}.ext`);
  await writeFile(ext, extensions.join('\n') + '\n');
  await run('openssl', ['req', ...EC, '-subj', subject, '-keyout', key, '-out', csr]);
  // An explicit random serial instead of -CAcreateserial: the leaves are signed in parallel.
  await run('openssl', [
    'x509', '-req', '-in', csr, '-CA', p.caCert, '-CAkey', p.caKey,
    '-set_serial', `0x${randomBytes(16).toString('hex')}`,
    '-days', DAYS, '-extfile', ext, '-out', join(p.dir, `${name}.crt`),
  ]);
}

/**
 * A self-contained kubeconfig (certificates inlined) for the admin identity. `name` names its cluster,
 * user and context (cluster 2's is `cutover-testbed-cluster-2`, so the two can be merged).
 */
export async function writeKubeconfig(path: string, server: string, p: Pki, name = 'cutover-testbed'): Promise<void> {
  const b64 = async (f: string) => (await readFile(f)).toString('base64');
  const text = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${name}`,
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${await b64(p.caCert)}`,
    'users:',
    `- name: ${name}-admin`,
    '  user:',
    `    client-certificate-data: ${await b64(p.adminCert)}`,
    `    client-key-data: ${await b64(p.adminKey)}`,
    'contexts:',
    `- name: ${name}`,
    '  context:',
    `    cluster: ${name}`,
    `    user: ${name}-admin`,
    '    namespace: default',
    `current-context: ${name}`,
    '',
  ].join('\n');
  await writeFile(path, text, { mode: 0o600 });
}
