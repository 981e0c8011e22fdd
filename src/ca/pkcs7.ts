// PKCS#7 / CMS "certs-only" (RFC 7030 4.1.3, 4.2.3): a SignedData with no content and no
// signers, carrying certificates. EST sends it base64 encoded.
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateChoices, CertificateSet, ContentInfo, DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignedData, SignerInfos, id_data, id_signedData } from '@peculiar/asn1-cms';
import { Certificate } from '@peculiar/asn1-x509';
import { pemBlocks, pemEncode } from '../util/pem.js';

/** DER of a certs-only SignedData holding every certificate in the PEM text(s), in order. */
export function certsOnlyDer(...pems: string[]): Uint8Array {
  const certs = pems.flatMap((p) => pemBlocks(p, 'CERTIFICATE')).map(({ der }) => new CertificateChoices({ certificate: AsnConvert.parse(der, Certificate) }));
  const signed = new SignedData({
    version: 1,
    digestAlgorithms: new DigestAlgorithmIdentifiers(),
    encapContentInfo: new EncapsulatedContentInfo({ eContentType: id_data }),
    certificates: new CertificateSet(certs),
    signerInfos: new SignerInfos(),
  });
  const info = new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signed) });
  return new Uint8Array(AsnConvert.serialize(info));
}

/**
 * The EST body: base64 of the DER in 64-column lines ending in LF. RFC 7030 allows CRLF or LF;
 * LF is what `base64 -d` and OpenSSL read as they are.
 */
export function certsOnlyBase64(...pems: string[]): string {
  return (Buffer.from(certsOnlyDer(...pems)).toString('base64').match(/.{1,64}/g) ?? []).join('\n') + '\n';
}

/** PEM certificates from a certs-only message (base64 text or DER), in the order they appear. */
export function certsFromPkcs7(body: string | Uint8Array): string[] {
  const der = typeof body === 'string' || body[0] !== 0x30
    ? Buffer.from((typeof body === 'string' ? body : Buffer.from(body).toString('latin1')).replace(/\s+/g, ''), 'base64')
    : Buffer.from(body);
  const info = AsnConvert.parse(der, ContentInfo);
  if (info.contentType !== id_signedData) throw new Error(`not a PKCS#7 SignedData (content type ${info.contentType})`);
  const signed = AsnConvert.parse(info.content, SignedData);
  const out: string[] = [];
  for (const c of signed.certificates ?? []) {
    if (c.certificate === undefined) continue;
    out.push(pemEncode(AsnConvert.serialize(c.certificate), 'CERTIFICATE'));
  }
  return out;
}
