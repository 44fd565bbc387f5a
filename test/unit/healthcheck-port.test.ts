import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { healthCheckUrlPath, selectHealthCheckPort, type HealthCheckPortInput } from '../../src/healthcheck/port.js';

type Ports = Array<{ containerPort: number; name?: string }> | undefined;
const spec = (firstContainerPorts: Ports, ...otherContainers: Ports[]): HealthCheckPortInput['podspec'] => ({
  containers: [firstContainerPorts, ...otherContainers].map((ports) => (ports ? { ports } : {})),
});

describe('selectHealthCheckPort', () => {
  const cases: Array<{ name: string; input: HealthCheckPortInput; port: number }> = [
    {
      name: 'healthCheckPort wins over a port named healthcheck',
      input: { healthCheckPort: 8081, podspec: spec([{ containerPort: 9000, name: 'healthcheck' }]) },
      port: 8081,
    },
    {
      name: 'healthCheckPort is used even with no ports',
      input: { healthCheckPort: 7000, podspec: { containers: [] } },
      port: 7000,
    },
    {
      name: 'the port named healthcheck among several',
      input: { podspec: spec([{ containerPort: 8080, name: 'http' }, { containerPort: 9090, name: 'healthcheck' }, { containerPort: 9100 }]) },
      port: 9090,
    },
    { name: 'the only port', input: { podspec: spec([{ containerPort: 3000, name: 'web' }]) }, port: 3000 },
    {
      name: 'the first of several unnamed-healthcheck ports',
      input: { podspec: spec([{ containerPort: 8080, name: 'http' }, { containerPort: 8443, name: 'https' }]) },
      port: 8080,
    },
    {
      name: 'only the first container counts',
      input: { podspec: spec([{ containerPort: 8080 }], [{ containerPort: 9999, name: 'healthcheck' }]) },
      port: 8080,
    },
    { name: 'no ports → 9999', input: { podspec: spec(undefined, [{ containerPort: 8080 }]) }, port: 9999 },
    { name: 'empty ports → 9999', input: { podspec: spec([]) }, port: 9999 },
    { name: 'no containers → 9999', input: { podspec: { containers: [] } }, port: 9999 },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(selectHealthCheckPort(c.input), c.port));
  }
});

describe('healthCheckUrlPath', () => {
  const cases: Array<[string | undefined, string]> = [
    ['health', '/health'],
    ['/health', '/health'],
    ['//evil.example/x', '/evil.example/x'],
    ['status/health?x=1', '/status/health?x=1'],
    ['', '/health'],
    ['/', '/health'],
    [undefined, '/health'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${expected}`, () => assert.equal(healthCheckUrlPath(input), expected));
  }
});
