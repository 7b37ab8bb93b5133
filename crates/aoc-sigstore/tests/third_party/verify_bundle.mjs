// Verifies a Sigstore bundle offline with sigstore-js (@sigstore/bundle + @sigstore/verify), trusting
// exactly one public key and no transparency log, CT log or timestamp authority.
//
// usage: node verify_bundle.mjs message BUNDLE PUBLIC_KEY_PEM ARTEFACT
//        node verify_bundle.mjs dsse    BUNDLE PUBLIC_KEY_PEM
// env:   AOC_NODE_MODULES = directory whose node_modules holds the packages (setup.sh installs them)
// Prints one JSON line on success and exits 0; prints the verifier's error and exits 1 otherwise.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { createHash, createPublicKey } from 'node:crypto';
import { join } from 'node:path';

const [mode, bundlePath, keyPath, artefactPath] = process.argv.slice(2);
if (!['message', 'dsse'].includes(mode) || !keyPath || (mode === 'message' && !artefactPath)) {
  console.error('usage: verify_bundle.mjs message|dsse BUNDLE PUBLIC_KEY_PEM [ARTEFACT]');
  process.exit(2);
}
if (!process.env.AOC_NODE_MODULES) {
  console.error('AOC_NODE_MODULES is not set: point it at target/third-party/node (see setup.sh)');
  process.exit(2);
}
// ESM ignores NODE_PATH, so resolve the packages from the install directory explicitly.
const require = createRequire(join(process.env.AOC_NODE_MODULES, 'package.json'));
const { bundleFromJSON, assertBundleLatest } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

try {
  const bundle = bundleFromJSON(JSON.parse(readFileSync(bundlePath, 'utf8')));
  assertBundleLatest(bundle); // v0.3 rules: no certificate chain, inclusion proofs where logs exist

  const spki = createPublicKey(readFileSync(keyPath, 'utf8')).export({ type: 'spki', format: 'der' });
  const hint = createHash('sha256').update(spki).digest('base64');
  // An empty trusted root plus one key: the offline equivalent of `cosign verify-blob --key K
  // --insecure-ignore-tlog`. The key is found by the bundle's publicKey.hint.
  const emptyRoot = { tlogs: [], ctlogs: [], certificateAuthorities: [], timestampAuthorities: [] };
  const trust = toTrustMaterial(emptyRoot, { [hint]: { rawBytes: spki } });
  const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });

  const artefact = mode === 'message' ? readFileSync(artefactPath) : undefined;
  const entity = toSignedEntity(bundle, artefact);
  verifier.verify(entity);

  const result = { ok: true, mode, hint: bundle.verificationMaterial.content.publicKey.hint };
  if (mode === 'message') {
    // Verifier checks the signature over the artefact; also bind the recorded digest to it, as
    // cosign does.
    if (!entity.signature.compareDigest(createHash('sha256').update(artefact).digest())) {
      throw new Error('messageDigest does not match the artefact');
    }
  } else {
    const env = bundle.content.dsseEnvelope;
    result.payloadType = env.payloadType;
    result.payloadSha256 = createHash('sha256').update(env.payload).digest('hex');
  }
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`sigstore-js rejected ${bundlePath}: ${e.code ?? e.name}: ${e.message}`);
  process.exit(1);
}
