// Shadow rules and rule hits through the real proxy process: the shadow list never changes what
// the client gets, its differences are logged (policy_shadow) and counted, and every allow/deny
// entry has a hit counter on /metrics.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/demo/echo-backend.js';
import { mtlsRequest } from '../helpers/certgate.js';
import { startCertgate, stopCli } from '../helpers/cli.js';
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { PROCESS_BASE } from '../helpers/config.js';

let pki: TestPki;
let dir: string;
let backend: EchoBackend;
let child: ChildProcess;
let output: () => string;
let origin: string;
let adminPort: number;
let alice: TestCert;
let bob: TestCert;
let mallory: TestCert;

beforeAll(async () => {
  pki = await createTestPki();
  alice = await pki.client({ subject: 'CN=alice, OU=payments, O=Acme', san: { uri: ['spiffe://acme.org/ns/prod/sa/alice'] } });
  bob = await pki.client({ subject: 'CN=bob, OU=payments, O=Acme' });
  mallory = await pki.client({ subject: 'CN=mallory, OU=payments, O=Acme' });
  dir = mkdtempSync(join(tmpdir(), 'certgate-shadow-'));
  await pki.writeTo(dir);
  backend = await startEchoBackend();
  const file = join(dir, 'certgate.yaml');
  writeFileSync(
    file,
    stringify({
      ...PROCESS_BASE,
      log: { level: 'info', access: false },
      watch: { enabled: false },
      routes: [
        {
          name: 'orders',
          match: { pathPrefix: '/orders' },
          upstream: backend.url,
          deny: [{ name: 'no-mallory', cn: 'mallory' }],
          allow: [{ name: 'payments', ou: 'payments' }],
          // The stricter rule being rolled out: only prod workloads by SPIFFE ID.
          shadow: { allow: [{ name: 'prod-only', spiffe: 'spiffe://acme.org/ns/prod/**' }] },
        },
        { name: 'rest', upstream: backend.url, allow: [{ subject: '*' }, { cn: 'never-used' }] },
      ],
    }),
  );
  const started = await startCertgate(file, '"adminPort":\\d+');
  ({ child, output } = started);
  origin = `https://127.0.0.1:${started.port}`;
  adminPort = started.adminPort!;
});

afterAll(async () => {
  if (child !== undefined) await stopCli(child);
  await backend?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const call = (c: TestCert, path: string) => mtlsRequest(origin, pki.rootPem, path, { client: { cert: c.chainPem, key: c.keyPem } });
const metricsText = async () => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
const shadowLines = () =>
  output()
    .split('\n')
    .filter((l) => l.includes('"event":"policy_shadow"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('shadow rules beside the real policy', () => {
  it('never change the outcome; a difference is logged once per certificate and route, and counted per request', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await call(alice, '/orders/1')).status).toBe(200); // both allow
      expect((await call(bob, '/orders/1')).status).toBe(200); // the shadow would refuse bob: still allowed
      expect((await call(mallory, '/orders/1')).status).toBe(403); // both refuse
    }
    await waitFor(() => shadowLines().length >= 1, { deadline: 10_000, what: 'a policy_shadow line' });
    const text = await waitFor(async () => {
      const t = await metricsText();
      return t.includes('certgate_policy_shadow_total{route="orders",result="would_deny"} 3') ? t : undefined;
    }, { deadline: 10_000, what: 'the shadow counter' });
    expect(text).toContain('certgate_policy_shadow_total{route="orders",result="agree"} 6');
    expect(text).toContain('certgate_policy_shadow_total{route="orders",result="would_allow"} 0');
    expect(shadowLines()).toEqual([
      expect.objectContaining({
        event: 'policy_shadow',
        subject: 'CN=bob,OU=payments,O=Acme',
        fingerprint: bob.fingerprint256,
        route: 'orders',
        decision: 'allow',
        rule: 'allow[payments]',
        shadow: 'identity_not_allowed',
        shadowRule: null,
        result: 'would_deny',
      }),
    ]);
  });

  it('counts hits per entry (by name, else by index), with unused entries at 0', async () => {
    expect((await call(bob, '/anything')).status).toBe(200);
    const text = await waitFor(async () => {
      const t = await metricsText();
      return t.includes('certgate_policy_rule_hits_total{route="rest",list="allow",rule="0"} 1') ? t : undefined;
    }, { deadline: 10_000, what: 'the rule hit counter' });
    expect(text).toContain('certgate_policy_rule_hits_total{route="orders",list="allow",rule="payments"} 6');
    expect(text).toContain('certgate_policy_rule_hits_total{route="orders",list="deny",rule="no-mallory"} 3');
    expect(text).toContain('certgate_policy_rule_hits_total{route="rest",list="allow",rule="1"} 0');
  });
});
