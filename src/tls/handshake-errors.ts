// Names for TLS handshake failures, as the log's `reason` and the handshake-failure metric's
// `reason` label: OpenSSL's error codes translated where they enter, so that an operator can
// alert on `no_shared_cipher` (a client that only speaks suites the profile left out, such as
// CBC) without knowing OpenSSL's spelling.

const REASONS: Readonly<Record<string, string>> = {
  ERR_SSL_NO_SHARED_CIPHER: 'no_shared_cipher',
  ERR_SSL_UNSUPPORTED_PROTOCOL: 'unsupported_protocol',
  ERR_SSL_UNKNOWN_PROTOCOL: 'unsupported_protocol',
  ERR_SSL_WRONG_VERSION_NUMBER: 'unsupported_protocol',
  ERR_SSL_NO_SUITABLE_KEY_SHARE: 'no_shared_group',
  ERR_SSL_NO_SHARED_GROUPS: 'no_shared_group',
  ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM: 'no_shared_signature_algorithm',
};

/** The reason of a `tlsClientError`: a stable name, else Node's code as it came. */
export function handshakeFailureReason(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code ?? 'TLS_ERROR';
  return REASONS[code] ?? code;
}
