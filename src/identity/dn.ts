// RFC 4514 strings from X.501 Names. Pure; no I/O.
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name as AsnName, type AttributeTypeAndValue } from '@peculiar/asn1-x509';

/** Anything certgate treats as a Name: the ASN.1 Name, or @peculiar/x509's Name (via its DER). */
export type NameLike = AsnName | { toArrayBuffer(): ArrayBuffer };

// RFC 4514 section 3 names first, then OpenSSL's short names (what `openssl x509 -nameopt RFC2253`
// and therefore Envoy print) for the types RFC 4514 leaves to dotted OIDs.
const SHORT_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.3', 'CN'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.6', 'C'],
  ['2.5.4.9', 'STREET'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
  ['1.2.840.113549.1.9.1', 'emailAddress'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.4', 'SN'],
  ['2.5.4.42', 'GN'],
  ['2.5.4.12', 'title'],
  ['2.5.4.43', 'initials'],
  ['2.5.4.44', 'generationQualifier'],
  ['2.5.4.46', 'dnQualifier'],
  ['2.5.4.65', 'pseudonym'],
  ['2.5.4.15', 'businessCategory'],
  ['2.5.4.17', 'postalCode'],
  ['2.5.4.41', 'name'],
  ['2.5.4.13', 'description'],
  ['2.5.4.97', 'organizationIdentifier'],
  ['1.3.6.1.4.1.311.60.2.1.3', 'jurisdictionC'],
  ['1.3.6.1.4.1.311.60.2.1.2', 'jurisdictionST'],
  ['1.3.6.1.4.1.311.60.2.1.1', 'jurisdictionL'],
]);

const OIDS_BY_NAME: ReadonlyMap<string, string> = new Map(
  [...SHORT_NAMES].map(([oid, short]) => [short.toLowerCase(), oid]),
);

/** The OID for a short name (`CN`, `ou`, `emailAddress`) or a dotted OID; undefined if unknown. */
function attributeOid(nameOrOid: string): string | undefined {
  if (/^\d+(\.\d+)+$/.test(nameOrOid)) return nameOrOid;
  return OIDS_BY_NAME.get(nameOrOid.toLowerCase());
}

function toAsnName(name: NameLike): AsnName {
  return name instanceof AsnName ? name : AsnConvert.parse(name.toArrayBuffer(), AsnName);
}

/** The string form of a value, or undefined when it is not a string type (then RFC 4514 wants #hex). */
function stringValue(atv: AttributeTypeAndValue): string | undefined {
  const v = atv.value;
  return v.utf8String ?? v.printableString ?? v.ia5String ?? v.bmpString ?? v.universalString ?? v.teletexString;
}

// Uppercase, as OpenSSL writes the #hex form.
function hex(buf: ArrayBuffer): string {
  return Buffer.from(buf).toString('hex').toUpperCase();
}

/**
 * Escapes one attribute value per RFC 4514 section 2.4. Beyond the required set, other control
 * characters are written as \XX too (allowed by the grammar) so a DN never carries a raw CR/LF
 * into a log line or header.
 */
export function escapeDnValue(value: string): string {
  let out = '';
  const last = value.length - 1;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    const code = c.charCodeAt(0);
    if (c === '"' || c === '+' || c === ',' || c === ';' || c === '<' || c === '>' || c === '\\') {
      out += '\\' + c;
    } else if ((i === 0 && (c === ' ' || c === '#')) || (i === last && c === ' ')) {
      out += '\\' + c;
    } else if (code < 0x20 || code === 0x7f) {
      out += '\\' + code.toString(16).padStart(2, '0').toUpperCase();
    } else {
      out += c;
    }
  }
  return out;
}

function atvString(atv: AttributeTypeAndValue): string {
  const short = SHORT_NAMES.get(atv.type);
  const str = short === undefined ? undefined : stringValue(atv);
  // Unknown types, and known types whose value is not a string, use the #hex of the BER value.
  if (short === undefined || str === undefined) {
    let body = '';
    try {
      body = hex(AsnConvert.serialize(atv.value));
    } catch {
      body = atv.value.anyValue === undefined ? '' : hex(atv.value.anyValue);
    }
    return `${short ?? atv.type}=#${body}`;
  }
  return `${short}=${escapeDnValue(str)}`;
}

/**
 * The RFC 4514 string of a Name: RDNs most specific first (the reverse of the encoded order),
 * the values of a multi-valued RDN joined with `+`. Like OpenSSL's RFC 2253 mode (which Envoy's
 * XFCC Subject uses) the whole attribute list is reversed, so the values inside a multi-valued
 * RDN come out in reverse encoded order too; RFC 4514 gives that order no meaning, and matching
 * OpenSSL keeps our strings byte-identical to Envoy's and `openssl x509 -nameopt RFC2253`.
 */
export function rfc4514(name: NameLike): string {
  const rdns = toAsnName(name);
  let out = '';
  for (let i = rdns.length - 1; i >= 0; i--) {
    const rdn = rdns[i]!;
    if (i !== rdns.length - 1) out += ',';
    for (let j = rdn.length - 1; j >= 0; j--) {
      out += atvString(rdn[j]!);
      if (j !== 0) out += '+';
    }
  }
  return out;
}

/**
 * Every string value of one attribute (`CN`, `O`, `OU`, any short name above, or a dotted OID), in
 * encoded order (most general RDN first), unescaped. Non-string values are skipped.
 */
export function nameValues(name: NameLike, attribute: string): string[] {
  const oid = attributeOid(attribute);
  if (oid === undefined) return [];
  const out: string[] = [];
  for (const rdn of toAsnName(name)) {
    for (const atv of rdn) {
      if (atv.type !== oid) continue;
      const s = stringValue(atv);
      if (s !== undefined) out.push(s);
    }
  }
  return out;
}
