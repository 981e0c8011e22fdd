// The one entry point to @peculiar/x509: loads the Reflect metadata API that its dependency
// tsyringe requires (reflect-metadata, before @peculiar/x509 itself) and installs Node's WebCrypto
// as its provider, once. Import `x509` from here, never from '@peculiar/x509'.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509, webcrypto };
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
