import type { KubernetesObject } from '@kubernetes/client-node';
import type { Descriptor } from '../domain/types.js';
import { trafficLabels } from './labels.js';

/**
 * Sticky sessions, compression, extra response headers and the www redirect are not part of the
 * Ingress API; every controller spells them differently. A profile translates the descriptor's
 * wishes for one controller, so the engine never depends on a particular one (ingress-nginx is
 * retired upstream). Profiles are pure: they return annotations and extra objects to create.
 */
export interface TrafficDecorations {
  /** On the main Ingress `{app}`. */
  ingressAnnotations: Record<string, string>;
  /** On the `{app}-www-redirect` Ingress. */
  wwwIngressAnnotations: Record<string, string>;
  /** On the Services traffic is routed to (versioned and stable). */
  serviceAnnotations: Record<string, string>;
  /** Controller objects (e.g. Traefik Middlewares) created before the Ingresses reference them. */
  extraObjects: KubernetesObject[];
  /** Lines for the deployment log: what was configured, and what this controller cannot do. */
  notes: string[];
}

export interface IngressProfile {
  readonly name: string;
  decorate(descriptor: Descriptor): TrafficDecorations;
  /** Every extra object this profile could have created for the app (for removal). */
  possibleExtraObjects(descriptor: Descriptor): Array<{ kind: string; name: string }>;
}

const empty = (): TrafficDecorations => ({ ingressAnnotations: {}, wwwIngressAnnotations: {}, serviceAnnotations: {}, extraObjects: [], notes: [] });

/** Standard Ingress only: features that need controller extensions are reported, not faked. */
export const genericProfile: IngressProfile = {
  name: 'generic',
  possibleExtraObjects: () => [],
  decorate(d) {
    const out = empty();
    const unsupported = [
      d.useStickySessions && 'useStickySessions',
      d.useCompression && 'useCompression',
      d.additionHttpHeaders.length > 0 && 'additionHttpHeaders',
      d.redirectWww && 'redirectWww (the www Ingress is created but cannot redirect)',
    ].filter(Boolean);
    if (unsupported.length > 0) {
      out.notes.push(`ingress profile "generic" cannot express ${unsupported.join(', ')}; set CUTOVER_INGRESS_PROFILE to your controller's profile`);
    }
    return out;
  },
};

const TRAEFIK_MIDDLEWARE_API = 'traefik.io/v1alpha1';

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Traefik Proxy v3 (kubernetesingress provider): sticky cookies are a Service annotation;
 * compression, response headers and the www redirect are Middleware objects referenced from the
 * Ingress with `router.middlewares` (`{namespace}-{name}@kubernetescrd`).
 */
export const traefikProfile: IngressProfile = {
  name: 'traefik',
  possibleExtraObjects: (d) => ['compress', 'headers', 'www-redirect'].map((suffix) => ({ kind: 'Middleware', name: `${d.appName}-${suffix}` })),
  decorate(d) {
    const out = empty();
    const ns = d.namespace;
    const middleware = (name: string, spec: Record<string, unknown>): KubernetesObject & { spec: unknown } => ({
      apiVersion: TRAEFIK_MIDDLEWARE_API, kind: 'Middleware',
      metadata: { name, namespace: ns, labels: trafficLabels(d.appName) },
      spec,
    });
    const refs: string[] = [];
    if (d.useStickySessions) {
      out.serviceAnnotations['traefik.ingress.kubernetes.io/service.sticky.cookie'] = 'true';
      out.notes.push('sticky sessions: Traefik cookie affinity on the Services');
    }
    if (d.useCompression) {
      out.extraObjects.push(middleware(`${d.appName}-compress`, { compress: {} }));
      refs.push(`${ns}-${d.appName}-compress@kubernetescrd`);
      out.notes.push(`compression: Traefik Middleware ${d.appName}-compress`);
    }
    if (d.additionHttpHeaders.length > 0) {
      const headers = Object.fromEntries(d.additionHttpHeaders.map((h) => [h.Header, h.Value]));
      out.extraObjects.push(middleware(`${d.appName}-headers`, { headers: { customResponseHeaders: headers } }));
      refs.push(`${ns}-${d.appName}-headers@kubernetescrd`);
      out.notes.push(`response headers (${Object.keys(headers).join(', ')}): Traefik Middleware ${d.appName}-headers`);
    }
    if (refs.length > 0) out.ingressAnnotations['traefik.ingress.kubernetes.io/router.middlewares'] = refs.join(',');
    if (d.redirectWww && d.frontend && !d.frontend.startsWith('*.')) {
      const name = `${d.appName}-www-redirect`;
      out.extraObjects.push(middleware(name, {
        redirectRegex: { regex: `^(https?)://www\\.${escapeRegex(d.frontend)}(.*)`, replacement: `$1://${d.frontend}$2`, permanent: true },
      }));
      out.wwwIngressAnnotations['traefik.ingress.kubernetes.io/router.middlewares'] = `${ns}-${name}@kubernetescrd`;
      out.notes.push(`www redirect: Traefik Middleware ${name}`);
    }
    return out;
  },
};

export const ingressProfiles: Record<string, IngressProfile> = {
  generic: genericProfile,
  traefik: traefikProfile,
};
