// Raw-socket helpers: one response without closing, a close timer, the certificate a fresh
// handshake gets.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { connect, type TLSSocket } from 'node:tls';

/** Resolves with ms until the socket closes, or -1 after `ms`. Keeps the socket flowing. */
export function closedWithin(s: TLSSocket, ms: number): Promise<number> {
  const t0 = Date.now();
  s.resume(); // an unread socket never sees the peer's close
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(0);
    const t = setTimeout(() => resolve(-1), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(Date.now() - t0);
    });
  });
}

/** Sends one request and resolves with the response text once a full response arrived; the socket stays open. */
export function oneResponse(s: TLSSocket, data: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const onData = (c: Buffer) => {
      out += c.toString('latin1');
      const m = /content-length: (\d+)/i.exec(out);
      const i = out.indexOf('\r\n\r\n');
      if (m && i >= 0 && out.length >= i + 4 + Number(m[1])) {
        s.off('data', onData);
        resolve(out);
      }
    };
    s.on('data', onData);
    s.write(data);
  });
}

/** SHA-256 fingerprint (lowercase hex) of the certificate a new handshake gets. */
export function servedFingerprint(port: number, ca: string, client?: { cert: string; key: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ...(client ?? {}) }, () => {
      const fp = s.getPeerX509Certificate()!.fingerprint256.replace(/:/g, '').toLowerCase();
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

/** What `openssl s_client -status` prints for the listener: the stapled OCSP response, decoded. */
export function opensslStatus(port: number): Promise<string> {
  return new Promise<string>((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-status'], { timeout: 15_000 }, (_e, o) => resolve(o));
    child.stdin?.end();
  });
}

/** The serial number as `openssl s_client -status` prints it (hex, upper case, no leading zeros). */
export function opensslSerial(certPem: string): string {
  return new X509Certificate(certPem).serialNumber.replace(/^0+/, '').toUpperCase();
}
