// Matcher entries of the config: routes[].allow and deny, admin.tls.allow and
// headers.trustedProxies. A part of the one config declaration (definition.ts), kept apart
// because every certificate field and entry kind is declared here.

import { bool, fingerprint, glob, oneOf, routeName, serial, spiffeId } from './values.js';
import { list, object, optional, refine, type Type } from './schema.js';

const values = (t: Type<string>) => list(t, { scalar: true, nonEmpty: true });

export const matcherShape = {
  name: optional(routeName, 'A name for the entry, not matched against anything: `certgate explain` and `certgate test` show it, and it is the `rule` label of `certgate_policy_rule_hits_total` (default: the entry\'s index).'),
  cn: optional(values(glob), 'Any subject common name.'),
  o: optional(values(glob), 'Any subject organisation.'),
  ou: optional(values(glob), 'Any subject organisational unit.'),
  dns: optional(values(glob), 'Any DNS subjectAltName; `*` stands for exactly one label.'),
  uri: optional(values(glob), 'Any URI subjectAltName; `*` stays within one path segment, `**` spans segments.'),
  spiffe: optional(values(spiffeId), 'The SPIFFE ID (the `spiffe://` URI SAN); values must start with `spiffe://`.'),
  email: optional(values(glob), 'Any email subjectAltName.'),
  fingerprint: optional(values(fingerprint), 'The SHA-256 fingerprint of the certificate, in any common form (`AB:CD:…`, `sha256:abcd…`); no globs.'),
  serial: optional(values(serial), 'The serial number in hex; colons, case, `0x` and leading zeros are ignored; no globs.'),
  issuer: optional(values(glob), 'The issuer DN as an RFC 4514 string.'),
  subject: optional(values(glob), 'The subject DN as an RFC 4514 string (`{ subject: "*" }` allows any trusted client).'),
};

/** Keys of an entry that say nothing about the client: an entry of only these would match everyone. */
const notMatching = new Set(['name', 'role']);
const onlyLabels = (entry: object): boolean => Object.keys(entry).every((k) => notMatching.has(k));

const matcher = {
  ...object(matcherShape, {
    expect: 'a map of certificate fields such as { cn: alice }',
    nullIsValue: true,
    emptyMessage: 'an empty matcher would match every certificate; use { subject: "*" } to allow any trusted client',
    check: (entry, map, ctx) => {
      if (onlyLabels(entry) && map.has('name')) ctx.report(map.at, map.path, 'a matcher with only a name would match every certificate; add a certificate field such as { cn: alice }');
    },
  }),
  name: 'matcher entry',
};
export const matchers = list(matcher);

// routes[].allow: the matcher fields, or an entry for requests without a certificate.
const certless = (map: { has(k: string): boolean }) => (map.has('anonymous') ? 'anonymous' : map.has('apiKey') ? 'apiKey' : undefined);
export const allowEntry = {
  ...object(
    {
      ...matcherShape,
      anonymous: optional(refine(bool, (b, fail) => (b ? b : fail('must be true (leave the entry out to refuse clients without a certificate)'))), 'Requests that present no client certificate (and only those): `{ anonymous: true }`. See docs/policy.md.'),
      apiKey: optional(values(glob), 'Requests without a certificate that carry a valid key of `apiKeys.file` with this name (globs). See docs/policy.md.'),
    },
    {
      expect: 'a map of certificate fields such as { cn: alice }, or { anonymous: true }, or { apiKey: NAME }',
      nullIsValue: true,
      emptyMessage: 'an empty matcher would match every certificate; use { subject: "*" } to allow any trusted client',
      check: (entry, map, ctx) => {
        const kind = certless(map);
        if (kind === undefined) {
          if (onlyLabels(entry) && map.has('name')) ctx.report(map.at, map.path, 'a matcher with only a name would match every certificate; add a certificate field such as { cn: alice }');
          return;
        }
        if (map.has('anonymous') && map.has('apiKey')) ctx.report(map.posOf('apiKey'), `${map.path}.apiKey`, 'anonymous and apiKey are separate entries');
        else if (Object.keys(entry).some((k) => k in matcherShape && !notMatching.has(k))) ctx.report(map.posOf(kind), `${map.path}.${kind}`, `${kind} matches requests without a certificate; it cannot be combined with certificate fields (write a separate entry)`);
        ctx.after.push(() => {
          const root = ctx.root as { tls?: { refuse?: string }; apiKeys?: unknown };
          if (root.tls?.refuse === 'handshake') ctx.report(map.posOf(kind), `${map.path}.${kind}`, 'tls.refuse: handshake closes every connection without a certificate; use tls.refuse: request for routes that admit them');
          else if (kind === 'apiKey' && root.apiKeys === undefined) ctx.report(map.posOf(kind), `${map.path}.${kind}`, 'needs apiKeys.file (the key list)');
        });
      },
    },
  ),
  name: 'allow entry',
};

// admin.tls.allow: the same matcher fields, plus the role the certificate gets.
export const adminRoles = ['admin', 'read'] as const;

export const adminMatcher = {
  ...object(
    { ...matcherShape, role: optional(oneOf(adminRoles), '`admin` (default): every endpoint; `read`: GET endpoints only.') },
    {
      expect: 'a map of certificate fields such as { cn: ops }',
      nullIsValue: true,
      emptyMessage: 'an empty matcher would match every certificate; use { subject: "*" } to allow any trusted client',
      check: (entry, map, ctx) => {
        if (onlyLabels(entry) && (map.has('role') || map.has('name'))) ctx.report(map.at, map.path, `a matcher with only a ${map.has('role') ? 'role' : 'name'} would match every certificate; add a certificate field such as { cn: ops }`);
      },
    },
  ),
  name: 'matcher entry',
};
