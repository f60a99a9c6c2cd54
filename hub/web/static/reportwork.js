// The report page's proof of work, in a Web Worker so that the page stays responsive:
// find a nonce (decimal digits) such that SHA-256(challenge + nonce) starts with `bits` zero
// bits (hub/osint/challenges.py checks it). Hashes go through Web Crypto in batches; after
// each batch the page is told how many were tried.

const BATCH = 256;

function zeroBits(bytes) {
  let bits = 0;
  for (const byte of bytes) {
    if (byte === 0) { bits += 8; continue; }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

self.onmessage = async (event) => {
  const { challenge, bits } = event.data;
  const encoder = new TextEncoder();
  try {
    for (let start = 0; ; start += BATCH) {
      const nonces = Array.from({ length: BATCH }, (_, i) => String(start + i));
      const digests = await Promise.all(nonces.map((nonce) =>
        crypto.subtle.digest("SHA-256", encoder.encode(challenge + nonce))));
      for (let i = 0; i < BATCH; i++) {
        if (zeroBits(new Uint8Array(digests[i])) >= bits) {
          self.postMessage({ nonce: nonces[i], tried: start + i + 1 });
          return;
        }
      }
      self.postMessage({ tried: start + BATCH });
    }
  } catch (error) {
    self.postMessage({ error: String(error && error.message || error) });
  }
};
