/**
 * The worker thread behind DkimSigner: runs mailauth's dkimSign, whose RSA operation takes about
 * a millisecond of CPU, away from the event loop that serves every session.
 */
import { parentPort } from 'node:worker_threads';
import { dkimSign } from 'mailauth';

export interface SignRequest {
  id: number;
  message: Uint8Array;
  // The options mailauth's dkimSign takes (signatureData and the like).
  options: Parameters<typeof dkimSign>[1];
}

export interface Signed {
  id: number;
  signatures: string;
  error?: undefined;
}

export type SignResponse = Signed | { id: number; error: string };

parentPort!.on('message', async (req: SignRequest) => {
  let response: SignResponse;
  try {
    const result = await dkimSign(Buffer.from(req.message.buffer, req.message.byteOffset, req.message.length), req.options);
    response = result.errors && result.errors.length > 0
      ? { id: req.id, error: result.errors.map((e) => e.err?.message ?? String(e)).join('; ') }
      : { id: req.id, signatures: result.signatures };
  } catch (err) {
    response = { id: req.id, error: (err as Error).message ?? String(err) };
  }
  parentPort!.postMessage(response);
});
