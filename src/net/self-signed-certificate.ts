/**
 * What the self-signed certificate is, in one place: valid from a day ago (a client whose clock
 * is a little behind still takes it) for 820 days, within the 825 Apple's clients take, with the
 * usage extensions they ask for (serverAuth), for the host name, localhost and 127.0.0.1. The
 * server makes a new one when this one is near its end (tls.ts); self-signed.ts writes it.
 */
import selfsigned from 'selfsigned';

const DAY = 86_400_000;

/** The certificate and its private key, PEM. */
export async function makeSelfSignedCertificate(hostname: string): Promise<{ cert: string; key: string }> {
  const notBefore = new Date(Date.now() - DAY);
  const pems = await selfsigned.generate([{ name: 'commonName', value: hostname }], {
    keySize: 2048,
    notBeforeDate: notBefore,
    notAfterDate: new Date(notBefore.getTime() + 820 * DAY),
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }, { type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}
