import { DOCS_PATHS } from '../api/routes/docs.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { KvStore } from '../store/kv.js';
import { ApiKeyStore } from '../store/api-keys.js';
import { AuditStore } from '../store/audit.js';
import { EtcdSeenSignatures } from '../store/seen-signatures.js';
import { ApiKeyAdmin, ApiKeyVerifier } from './api-keys.js';
import { JwtVerifier } from './jwt.js';
import { Authenticator } from './middleware.js';
import { FailedAuthLimiter } from './rate-limit.js';
import type { AuthSetup } from './settings.js';

export interface Security {
  authenticator: Authenticator;
  audit: AuditStore;
  /** Undefined when no key-encryption key is configured. */
  keyAdmin: ApiKeyAdmin | undefined;
  /** Normalised paths served without credentials. */
  openPaths: string[];
  close(): Promise<void>;
}

export interface SecurityDeps {
  kv: KvStore;
  log: Logger;
  now: () => Date;
  onCorrupt: (key: string, err: Error) => void;
  /** Failed authentications (metrics). */
  onAuthFailure?: (method: 'jwt' | 'api-key' | 'none', limited: boolean) => void;
}

/** Probes and the API's own documentation (nothing secret) need no credentials. */
export const ALWAYS_OPEN_PATHS = ['/healthz', '/readyz', ...DOCS_PATHS];
export const METRICS_PATH = '/metrics';

/** Builds authentication, the replay cache, key management and the audit store from a checked set-up. */
export function createSecurity(setup: AuthSetup, config: Config, deps: SecurityDeps): Security {
  const log = deps.log.child({ component: 'auth' });
  if (!setup.enabled) {
    log.warn('AUTHENTICATION IS OFF (CUTOVER_AUTH=off): every caller is an administrator of every namespace. Never run like this where others can reach the API.');
  }
  const keyStore = new ApiKeyStore(deps.kv, deps.onCorrupt);
  const seenSignatures = setup.apiKeysEnabled
    ? new EtcdSeenSignatures(deps.kv, { onError: (err) => log.warn({ err: err.message }, 'could not sweep the replay cache') })
    : undefined;
  const authenticator = new Authenticator({
    enabled: setup.enabled,
    ...(setup.jwt ? { jwt: new JwtVerifier(setup.jwt) } : {}),
    ...(setup.apiKeysEnabled && setup.keks && seenSignatures
      ? { apiKeys: new ApiKeyVerifier({ store: keyStore, keks: setup.keks, replay: seenSignatures, log }) }
      : {}),
    limiter: new FailedAuthLimiter({ failuresPerMinute: config.authFailuresPerMinute }),
    log,
    ...(deps.onAuthFailure ? { onFailure: deps.onAuthFailure } : {}),
  });
  const audit = new AuditStore(deps.kv, {
    keepPerNamespace: config.auditKeepPerNamespace,
    now: deps.now,
    onCorrupt: deps.onCorrupt,
    onPruneError: (namespace, err) => log.warn({ namespace, err: err.message }, 'could not prune old audit entries'),
  });
  log.info({
    auth: setup.enabled ? 'on' : 'off',
    jwt: setup.jwt ? setup.jwt.key.kind : 'off',
    apiKeys: setup.apiKeysEnabled ? 'on' : 'off',
    metricsAuth: config.metricsAuth,
  }, 'authentication configured');
  return {
    authenticator,
    audit,
    keyAdmin: setup.keks ? new ApiKeyAdmin(keyStore, setup.keks, deps.now) : undefined,
    openPaths: config.metricsAuth === 'on' ? [...ALWAYS_OPEN_PATHS] : [...ALWAYS_OPEN_PATHS, METRICS_PATH],
    close: async () => {
      await seenSignatures?.close();
      await audit.close();
    },
  };
}
