// `certgate scan`'s probes on real sockets: certgate's own listener with its defaults offers
// nothing scan calls a problem (TLS 1.2/1.3 only, AEAD only, complete chain), and a deliberately
// weak `openssl s_server` (TLS 1.0/1.1, a CBC suite with static RSA key exchange) is flagged
// for each of those, with a severity, in --json.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/cli/cmd-scan.js';
import type { Harness } from '../helpers/certgate.js';
import { startScanTargets, type ScanTargets, type WeakServer } from '../helpers/weak-server.js';

let rootFile: string;
let certgate: Harness;
let weak: WeakServer;
let targets: ScanTargets;

async function scanJson(args: string[]) {
  let out = '';
  const code = await run([...args, '--json'], { write: (t) => (out += t) });
  return { code, r: JSON.parse(out).endpoints[0] };
}

beforeAll(async () => {
  targets = await startScanTargets('certgate-scan-probes-');
  ({ rootFile, certgate, weak } = targets);
});

afterAll(async () => {
  await targets?.close();
});

describe('certgate scan probes', () => {
  it("finds no problem on certgate's own listener with its defaults: TLS 1.2/1.3 only, no CBC, forward secrecy, complete chain", async () => {
    const { code, r } = await scanJson([`127.0.0.1:${certgate.port}`, '--servername', 'localhost', '--ca', rootFile]);
    expect(r.problems).toEqual([]);
    expect(code).toBe(0);
    expect(r.protocols).toEqual({ SSLv3: false, TLSv1: false, 'TLSv1.1': false, 'TLSv1.2': true, 'TLSv1.3': true });
    for (const cls of ['cipher.null', 'cipher.anonymous', 'cipher.export', 'cipher.rc4', 'cipher.3des', 'cipher.cbc', 'cipher.no-forward-secrecy']) expect(r.suites[cls], cls).toBeNull();
    expect(r.incompleteChain).toBe(false);
    expect(r.findings.map((f: { id: string }) => f.id)).toEqual(expect.arrayContaining(['key', 'ocsp.stapling', 'session.ticket']));
    expect(r.findings.find((f: { id: string }) => f.id === 'session.ticket').message).toMatch(/lifetime hint \d+ s|no session ticket/);
  });

  it('flags a weak openssl s_server for TLS 1.0, TLS 1.1, CBC and a key exchange without forward secrecy (exit 1)', async () => {
    const { code, r } = await scanJson([`127.0.0.1:${weak.port}`, '--servername', 'localhost', '--ca', rootFile]);
    expect(code).toBe(1);
    expect(r.protocols).toMatchObject({ SSLv3: false, TLSv1: true, 'TLSv1.1': true, 'TLSv1.2': true, 'TLSv1.3': false });
    expect(r.suites).toMatchObject({ 'cipher.cbc': 'AES128-SHA', 'cipher.no-forward-secrecy': 'AES128-SHA', 'cipher.rc4': null, 'cipher.3des': null, 'cipher.null': null });
    const severity = Object.fromEntries(r.findings.map((f: { id: string; severity: string }) => [f.id, f.severity]));
    expect(severity).toMatchObject({ 'protocol.tls1': 'medium', 'protocol.tls1_1': 'medium', 'cipher.cbc': 'medium', 'cipher.no-forward-secrecy': 'medium' });
    expect(r.problems.join('\n')).toMatch(/TLSv1 is offered[\s\S]*CBC suites/);
  });

  it('prints the protocols offered and the info findings in the table, with the verdict last', async () => {
    let out = '';
    const code = await run([`127.0.0.1:${certgate.port}`, '--servername', 'localhost', '--ca', rootFile], { write: (t) => (out += t) });
    expect(code).toBe(0);
    expect(out).toMatch(/\n {2}protocols offered: TLSv1\.2 TLSv1\.3\n(?: {2}info: .*\n)+ {2}healthy\n$/);
  });

  it('with --quick makes one handshake only and reports no protocol or cipher findings', async () => {
    const { code, r } = await scanJson([`127.0.0.1:${weak.port}`, '--servername', 'localhost', '--ca', rootFile, '--quick']);
    expect(r.protocols).toBeUndefined();
    expect(r.findings.filter((f: { id: string }) => /^(protocol|cipher|ocsp|session)/.test(f.id))).toEqual([]);
    expect(r.problems.join('\n')).not.toMatch(/TLSv1 is offered|CBC/);
  });
});
