// String.prototype must stay a fast-properties object in a running certgate: ioredis's
// `class VerbatimString extends String` turns it into a dictionary, after which every string
// method call in optimised code is a generic lookup (about 10k instructions per proxied request,
// bench/instructions.ts). V8's own %HasFastProperties tells, in a child process started with
// --allow-natives-syntax (the flag cannot be given to vitest's workers).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, stopCli } from '../helpers/cli.js';
import { createTestPki } from '../helpers/pki.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'certgate-strproto-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runNode(args: string[], until: (out: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--allow-natives-syntax', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no answer in time: ${out}`));
    }, 60_000);
    const onData = (c: Buffer) => {
      out += c;
      if (until(out)) {
        clearTimeout(t);
        void stopCli(child).then(() => resolve(out));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(out);
    });
  });
}

describe('String.prototype stays fast', () => {
  it('keepStringMethodsFast turns a String.prototype made a dictionary by a subclass back into fast properties', async () => {
    const script = join(dir, 'unit.mjs');
    writeFileSync(
      script,
      `class Verbatim extends String {}
void Verbatim;
const before = %HasFastProperties(String.prototype);
const { keepStringMethodsFast } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/util/v8-strings.js')).href)});
keepStringMethodsFast();
console.log(JSON.stringify({ before, after: %HasFastProperties(String.prototype) }));
`,
    );
    const out = await runNode([script], (o) => o.includes('"after"'));
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ before: false, after: true });
  });

  it('is fast in a running certgate, which loads ioredis', async () => {
    const pki = await createTestPki();
    await pki.writeTo(dir);
    const file = join(dir, 'certgate.yaml');
    writeFileSync(
      file,
      stringify({
        listen: { host: '127.0.0.1', port: 0 },
        tls: { cert: 'server.pem', key: 'server-key.pem', clientCAs: ['ca-bundle.pem'] },
        admin: { enabled: false },
        log: { level: 'info', access: false },
        watch: { enabled: false },
        revocation: { dataDir: join(dir, 'data') },
        routes: [{ name: 'all', upstream: 'http://127.0.0.1:9', allow: [{ cn: 'alice' }] }],
      }),
    );
    // The probe reports String.prototype's state when it changes, and now and then: it must be
    // fast by the time the proxy listens, and stay so.
    const probe = join(dir, 'probe.mjs');
    writeFileSync(
      probe,
      `let last;
const check = () => {
  const fast = %HasFastProperties(String.prototype);
  // Every change, and every 20th check: a report after the listening line ends the test.
  if (fast !== last || ++n % 20 === 0) process.stderr.write('string-proto fast=' + fast + '\\n');
  last = fast;
};
let n = 0;
check();
setInterval(check, 5).unref();
`,
    );
    // Done once a report came after the listening line.
    const listened = (o: string) => {
      const at = o.indexOf('"event":"listening"');
      return at >= 0 && o.indexOf('string-proto', at) > at;
    };
    const out = await runNode(['--import', pathToFileURL(probe).href, CLI, 'start', '--config', file], listened);
    const states = [...out.matchAll(/string-proto fast=(true|false)/g)].map((m) => m[1]);
    // ioredis (loaded with the store modules) makes it a dictionary on the way (the probe's timer
    // rarely runs in between); certgate turned it back before listening, and it stayed so.
    expect(out).toMatch(/"event":"listening"/);
    expect(states.at(-1)).toBe('true');
  });
});
