import type { KubernetesObject } from '@kubernetes/client-node';
import type { Descriptor } from '../domain/types.js';
import type { Kind } from '../kube/resources.js';
import { trafficLabels } from './labels.js';
import type { RouteFilter } from './manifests.js';

/**
 * Sticky sessions, compression, extra response headers and the www redirect are not part of the
 * Ingress API; every controller spells them differently. A profile translates the descriptor's
 * wishes for one controller, so the engine never depends on a particular one (ingress-nginx is
 * retired upstream). For HTTPRoutes the Gateway API expresses headers and redirects itself (standard
 * filters); the profile adds what only the controller can do (ExtensionRef filters). Profiles are
 * pure: they return annotations, filters and objects to create.
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

export interface RouteDecorations {
  /** Filters of the main HTTPRoute's rule (besides the standard ones cutover adds itself). */
  filters: RouteFilter[];
  extraObjects: KubernetesObject[];
  notes: string[];
}

export interface DecorateOptions {
  /** The version traffic goes to (for the version response header). */
  version?: string;
  /** CUTOVER_VERSION_HEADER: responses carry the version that answered. */
  versionHeader?: string;
}

export interface IngressProfile {
  readonly name: string;
  /** Kinds of the objects this profile creates besides Ingresses and HTTPRoutes (RBAC, reconciler). */
  readonly kinds: readonly Kind[];
  decorate(descriptor: Descriptor, options?: DecorateOptions): TrafficDecorations;
  decorateRoute(descriptor: Descriptor): RouteDecorations;
  /**
   * Objects that belong to one version (created with its workload, removed with it): e.g. the
   * Middleware that tags its answers with the version header, which the Ingress of that version
   * references — so the backend and the tag change in the same write.
   */
  versionedObjects(descriptor: Descriptor, version: string, options: DecorateOptions): KubernetesObject[];
  /** Every extra object this profile could have created for the app's Ingress (for removal). */
  possibleExtraObjects(descriptor: Descriptor): Array<{ kind: Kind; name: string }>;
  /**
   * … and for its HTTPRoute. Separate names from the Ingress's: with routing "both" each target
   * owns its own objects, so removing one target's never breaks the other's.
   */
  possibleRouteObjects(descriptor: Descriptor): Array<{ kind: Kind; name: string }>;
}

const empty = (): TrafficDecorations => ({ ingressAnnotations: {}, wwwIngressAnnotations: {}, serviceAnnotations: {}, extraObjects: [], notes: [] });

/** Standard Ingress only: features that need controller extensions are reported, not faked. */
export const genericProfile: IngressProfile = {
  name: 'generic',
  kinds: [],
  possibleExtraObjects: () => [],
  possibleRouteObjects: () => [],
  versionedObjects: () => [],
  decorate(d, options = {}) {
    const out = empty();
    const unsupported = [
      d.useStickySessions && 'useStickySessions',
      d.useCompression && 'useCompression',
      d.additionHttpHeaders.length > 0 && 'additionHttpHeaders',
      d.redirectWww && 'redirectWww (the www Ingress is created but cannot redirect)',
      options.versionHeader && `the ${options.versionHeader} header`,
    ].filter(Boolean);
    if (unsupported.length > 0) {
      out.notes.push(`ingress profile "generic" cannot express ${unsupported.join(', ')} on an Ingress; set CUTOVER_INGRESS_PROFILE to your controller's profile`);
    }
    return out;
  },
  decorateRoute(d) {
    const notes: string[] = [];
    const unsupported = [d.useStickySessions && 'useStickySessions', d.useCompression && 'useCompression'].filter(Boolean);
    if (unsupported.length > 0) notes.push(`the Gateway API (standard channel) cannot express ${unsupported.join(', ')}; not applied to the HTTPRoute`);
    return { filters: [], extraObjects: [], notes };
  },
};

const TRAEFIK_MIDDLEWARE_API = 'traefik.io/v1alpha1';

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function middleware(d: Descriptor, name: string, spec: Record<string, unknown>): KubernetesObject & { spec: unknown } {
  return {
    apiVersion: TRAEFIK_MIDDLEWARE_API, kind: 'Middleware',
    metadata: { name, namespace: d.namespace, labels: trafficLabels(d.appName) },
    spec,
  };
}

function routeCompressName(d: Descriptor): string {
  return `${d.appName}-route-compress`;
}

function versionTagName(d: Descriptor, version: string): string {
  return `${d.appName}-${version}-version`;
}

/**
 * Traefik Proxy v3 (kubernetesingress and kubernetesgateway providers): sticky cookies are a Service
 * annotation; compression, response headers and the www redirect are Middleware objects referenced
 * from the Ingress with `router.middlewares` (`{namespace}-{name}@kubernetescrd`); an HTTPRoute
 * reaches the compression Middleware through an ExtensionRef filter.
 */
export const traefikProfile: IngressProfile = {
  name: 'traefik',
  kinds: ['Middleware'],
  possibleExtraObjects: (d) => ['compress', 'headers', 'www-redirect'].map((suffix) => ({ kind: 'Middleware' as const, name: `${d.appName}-${suffix}` })),
  possibleRouteObjects: (d) => [{ kind: 'Middleware' as const, name: routeCompressName(d) }],
  versionedObjects(d, version, options) {
    if (!options.versionHeader || !d.frontend) return [];
    return [middleware(d, versionTagName(d, version), { headers: { customResponseHeaders: { [options.versionHeader]: version } } })];
  },
  decorate(d, options = {}) {
    const out = empty();
    const ns = d.namespace;
    const refs: string[] = [];
    if (d.useStickySessions) {
      out.serviceAnnotations['traefik.ingress.kubernetes.io/service.sticky.cookie'] = 'true';
      out.notes.push('sticky sessions: Traefik cookie affinity on the Services');
    }
    if (d.useCompression) {
      out.extraObjects.push(middleware(d, `${d.appName}-compress`, { compress: {} }));
      refs.push(`${ns}-${d.appName}-compress@kubernetescrd`);
      out.notes.push(`compression: Traefik Middleware ${d.appName}-compress`);
    }
    if (d.additionHttpHeaders.length > 0) {
      const headers = Object.fromEntries(d.additionHttpHeaders.map((h) => [h.Header, h.Value]));
      out.extraObjects.push(middleware(d, `${d.appName}-headers`, { headers: { customResponseHeaders: headers } }));
      refs.push(`${ns}-${d.appName}-headers@kubernetescrd`);
      out.notes.push(`response headers (${Object.keys(headers).join(', ')}): Traefik Middleware ${d.appName}-headers`);
    }
    if (options.versionHeader && options.version) refs.push(`${ns}-${versionTagName(d, options.version)}@kubernetescrd`);
    if (refs.length > 0) out.ingressAnnotations['traefik.ingress.kubernetes.io/router.middlewares'] = refs.join(',');
    if (d.redirectWww && d.frontend && !d.frontend.startsWith('*.')) {
      const name = `${d.appName}-www-redirect`;
      out.extraObjects.push(middleware(d, name, {
        redirectRegex: { regex: `^(https?)://www\\.${escapeRegex(d.frontend)}(.*)`, replacement: `$1://${d.frontend}$2`, permanent: true },
      }));
      out.wwwIngressAnnotations['traefik.ingress.kubernetes.io/router.middlewares'] = `${ns}-${name}@kubernetescrd`;
      out.notes.push(`www redirect: Traefik Middleware ${name}`);
    }
    return out;
  },
  decorateRoute(d) {
    const out: RouteDecorations = { filters: [], extraObjects: [], notes: [] };
    if (d.useCompression) {
      const name = routeCompressName(d);
      out.extraObjects.push(middleware(d, name, { compress: {} }));
      out.filters.push({ type: 'ExtensionRef', extensionRef: { group: 'traefik.io', kind: 'Middleware', name } });
      out.notes.push(`compression: Traefik Middleware ${name} through an ExtensionRef filter`);
    }
    if (d.useStickySessions) {
      // Traefik's Gateway provider ignores the Service's sticky annotation, and the standard channel has no sessionPersistence.
      out.notes.push('sticky sessions: not applied to the HTTPRoute (the Gateway API standard channel has no session persistence, and Traefik\'s Gateway provider ignores the Service\'s sticky annotation)');
    }
    return out;
  },
};

export const ingressProfiles: Record<string, IngressProfile> = {
  generic: genericProfile,
  traefik: traefikProfile,
};
