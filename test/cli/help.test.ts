// Every command and sub-command answers --help/-h from the command table, documents every flag it
// accepts, and turns unknown options into a short usage error (exit 2) without Node's hints.
import { describe, expect, it } from 'vitest';
import { main, topHelp } from '../../src/cli/cli.js';
import { CA_ISSUE, CA_TOKEN, COMMANDS, INVENTORY, isGroup, leafCommands, RENEW, SCAN } from '../../src/cli/commands.js';
import { durationFlag, optionsOf, renderHelp, type CommandSpec } from '../../src/cli/flags.js';
import { UNIT_MS } from '../../src/util/duration.js';
import { runCli } from '../helpers/cli.js';

async function run(argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

const NODE_HINTS = /parseArgs|To specify a positional|ERR_PARSE_ARGS|Unknown option '/;
const leaves = leafCommands().map((spec) => [spec.name, spec] as const);

describe('--help from the command table', () => {
  it('lists start, check, explain, test, dev-certs, demo, inventory, scan, ca (6 sub-commands), renew, revoke, revocations (2)', () => {
    expect(leaves.map(([n]) => n)).toEqual([
      'start', 'check', 'explain', 'test', 'dev-certs', 'demo', 'inventory', 'scan',
      'ca init', 'ca issue', 'ca list', 'ca revoke', 'ca crl', 'ca token',
      'renew', 'revoke', 'revocations list', 'revocations delete',
    ]);
  });

  describe.each(leaves)('certgate %s', (name, spec) => {
    it.each(['--help', '-h'])('answers %s with its own usage on stdout and exit 0', async (flag) => {
      const r = await run([...name.split(' '), flag]);
      expect(r.code).toBe(0);
      expect(r.err).toBe('');
      expect(r.out).toBe(renderHelp(spec));
      expect(r.out).toContain(`Usage: certgate ${name} `);
      expect(r.out).toMatch(/Exit codes: 0 /);
      expect(r.out).not.toMatch(NODE_HINTS);
    });

    it('answers --help even after other (even wrong) options', async () => {
      const r = await run([...name.split(' '), '--bogus', '--help']);
      expect(r.code).toBe(0);
      expect(r.out).toBe(renderHelp(spec));
    });

    it('documents every flag that its parser accepts', () => {
      const help = renderHelp(spec);
      for (const [flag, o] of Object.entries(optionsOf(spec))) {
        expect(help).toMatch(new RegExp(`(^|\\s)--${flag}( |$)`, 'm'));
        if (o.short !== undefined) expect(help).toContain(`-${o.short}, --${flag}`);
      }
    });

    it('accepts every flag its help mentions (the synopsis cannot name a flag that does not exist)', () => {
      const accepted = new Set(Object.keys(optionsOf(spec)));
      const mentioned = [...renderHelp(spec).matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)].map((m) => m[1]!);
      expect(mentioned.filter((f) => !accepted.has(f))).toEqual([]);
    });

    it('refuses an unknown option with a usage error (exit 2) naming it, without Node hints', async () => {
      const r = await run([...name.split(' '), '--bogus']);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toContain(`certgate ${name}: unknown option --bogus`);
      expect(r.err).toContain(`"certgate ${name} --help"`);
      expect(r.err).not.toMatch(NODE_HINTS);
    });
  });

  it('certgate --help lists every command of the table', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(topHelp());
    for (const c of COMMANDS) {
      expect(r.out).toContain(`certgate ${c.name} `);
      expect(r.out.replace(/\s+/g, ' ')).toContain(c.summary);
    }
    expect(r.out).toContain('certgate start --config FILE');
  });

  it.each(COMMANDS.filter(isGroup).map((g) => [g.name, g] as const))('certgate %s --help lists its sub-commands', async (name, group) => {
    for (const flag of ['--help', '-h']) {
      const r = await run([name, flag]);
      expect(r.code).toBe(0);
      for (const sub of Object.values(group.subcommands)) expect(r.out.replace(/\s+/g, ' ')).toContain(sub.summary);
    }
    const bad = await run([name, 'frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain(`unknown ${name} command "frobnicate"`);
  });

  it('names the flag that lacks a value, or takes none, or swallowed the next option', async () => {
    expect((await run(['scan', 'localhost:443', '--timeout'])).err).toContain('--timeout needs a value');
    expect((await run(['scan', 'localhost:443', '--json=yes'])).err).toContain('--json takes no value');
    expect((await run(['renew', '--cert', '--key', 'k.pem'])).err).toContain('--cert needs a value');
    expect((await run(['start', '--config', 'a.yaml', 'extra'])).err).toContain('unexpected argument "extra"');
  });
});

describe('duration flags: one parser, one documented meaning of a bare number per flag', () => {
  const durationFlags = leafCommands().flatMap((spec) =>
    Object.entries(spec.flags)
      .filter(([, f]) => f.duration !== undefined)
      .map(([flag, f]) => [`${spec.name} --${flag}`, spec, flag, f.duration!.bare] as const),
  );

  it('covers inventory --expiring-within, scan --timeout, renew --retry-min/--retry-max, ca issue --ttl, ca token --ttl', () => {
    expect(durationFlags.map(([n]) => n).sort()).toEqual(
      ['ca issue --ttl', 'ca token --ttl', 'inventory --expiring-within', 'renew --retry-max', 'renew --retry-min', 'scan --timeout'].sort(),
    );
  });

  it.each(durationFlags)('%s: units as everywhere, and a bare number as its help says', (_, spec: CommandSpec, flag, bare) => {
    expect(durationFlag(spec, flag, '15m')).toBe(900_000);
    expect(durationFlag(spec, flag, '2h')).toBe(7_200_000);
    expect(durationFlag(spec, flag, '7')).toBe(7 * UNIT_MS[bare!]);
    const names = { ms: 'milliseconds', s: 'seconds', m: 'minutes', h: 'hours', d: 'days' };
    expect(renderHelp(spec).replace(/\s+/g, ' ')).toContain(`a bare number means ${names[bare!]}`);
    expect(() => durationFlag(spec, flag, 'soon')).toThrow(/not a duration/);
    expect(() => durationFlag(spec, flag, '0s')).toThrow(/positive/);
  });

  it('keeps what users type today', () => {
    expect(durationFlag(INVENTORY, 'expiring-within', '30')).toBe(30 * 86_400_000);
    expect(durationFlag(INVENTORY, 'expiring-within', '30d')).toBe(30 * 86_400_000);
    expect(durationFlag(CA_TOKEN, 'ttl', '15m')).toBe(900_000);
    expect(durationFlag(CA_ISSUE, 'ttl', '45')).toBe(45_000);
    expect(durationFlag(SCAN, 'timeout', '5000')).toBe(5_000);
    expect(durationFlag(RENEW, 'retry-min', '300ms')).toBe(300);
  });
});

describe('the built certgate binary', () => {

  it.each([['scan'], ['ca', 'issue'], ['renew'], ['start'], ['revocations', 'delete']])('%s --help exits 0 with its usage and no Node hint', async (...cmd) => {
    const r = await runCli([...cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: certgate ${cmd.join(' ')} `);
    expect(r.stderr).toBe('');
  });

  it('scan --bogus exits 2 with a one-line reason and no parseArgs hint', async () => {
    const r = await runCli(['scan', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('certgate scan: unknown option --bogus');
    expect(r.stderr).not.toMatch(NODE_HINTS);
  });
});
