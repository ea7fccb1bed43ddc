// An independent SAML service provider (@node-saml/node-saml, the SP behind passport-saml) run
// against qiao's SAML IdP. The Go test that starts it registers the SP from the metadata this
// script prints and plays the person in the browser: for a line {"browse": URL} it answers with
// {"url": where the browser ended, "form": the HTTP-POST binding's fields, if it ended on one}.
// Everything SAML — the signed AuthnRequest, InResponseTo tracking, response and assertion
// signature checks, decryption, audience and time checks, the LogoutRequest and the LogoutResponse
// signature — is node-saml's own code.
//
// Environment: IDP_SSO, IDP_SLO, IDP_LAUNCH, IDP_CERT (PEM), SP_KEY, SP_CERT (PEM).
import { SAML } from '@node-saml/node-saml';
import * as readline from 'node:readline';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(msg) {
  console.log(JSON.stringify(msg));
  const { value, done } = await lines.next();
  if (done) throw new Error('the test closed stdin');
  return JSON.parse(value);
}
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const entity = 'https://node-sp.test/metadata';
const common = {
  entryPoint: env('IDP_SSO'),
  logoutUrl: env('IDP_SLO'),
  issuer: entity,
  audience: entity,
  callbackUrl: 'https://node-sp.test/acs',
  logoutCallbackUrl: 'https://node-sp.test/slo',
  idpCert: env('IDP_CERT'),
  privateKey: env('SP_KEY'), // signs AuthnRequests and LogoutRequests
  decryptionPvk: env('SP_KEY'), // decrypts assertions
  signatureAlgorithm: 'sha256',
  digestAlgorithm: 'sha256',
  wantAssertionsSigned: true,
  wantAuthnResponseSigned: true,
  identifierFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
  acceptedClockSkewMs: 5000,
};
const sp = new SAML({ ...common, validateInResponseTo: 'always' });
const result = {};

await ask({ metadata: sp.generateServiceProviderMetadata(env('SP_CERT'), env('SP_CERT')) });

// SP-initiated, HTTP-Redirect binding, through the WeCom simulator's login.
const authURL = await sp.getAuthorizeUrlAsync('relay-1', undefined, {});
let back = await ask({ browse: authURL });
check(back.form && back.form.RelayState === 'relay-1', 'the IdP posted back with the RelayState');
const { profile } = await sp.validatePostResponseAsync({ SAMLResponse: back.form.SAMLResponse, RelayState: back.form.RelayState });
check(profile && profile.nameID && profile.inResponseTo, 'a profile in response to our request');
result.sp_initiated = { nameID: profile.nameID, nameIDFormat: profile.nameIDFormat, inResponseTo: profile.inResponseTo, attributes: profile.attributes };

// The same response again: node-saml's InResponseTo cache has spent the request ID.
let replayRefused = false;
try {
  await sp.validatePostResponseAsync({ SAMLResponse: back.form.SAMLResponse, RelayState: back.form.RelayState });
} catch (e) {
  replayRefused = true;
}
check(replayRefused, 'a replayed response is refused');

// IdP-initiated (unsolicited) response from the launch URL.
const unsolicited = new SAML({ ...common, validateInResponseTo: 'never' });
back = await ask({ browse: env('IDP_LAUNCH') + '&RelayState=from-idp' });
check(back.form && back.form.RelayState === 'from-idp', 'the launch posted with its RelayState');
const idpInit = await unsolicited.validatePostResponseAsync({ SAMLResponse: back.form.SAMLResponse, RelayState: back.form.RelayState });
check(idpInit.profile.nameID === profile.nameID && !idpInit.profile.inResponseTo, 'IdP-initiated: same person, no InResponseTo');
result.idp_initiated = { nameID: idpInit.profile.nameID };

// Single logout: node-saml's signed LogoutRequest, then our signed LogoutResponse on its SLO URL.
const logoutURL = await sp.getLogoutUrlAsync(profile, 'bye', {});
back = await ask({ browse: logoutURL });
let out;
if (back.form) {
  // node-saml's metadata names an HTTP-POST SingleLogoutService: a signed LogoutResponse is posted.
  check(back.form.action === 'https://node-sp.test/slo' && back.form.RelayState === 'bye', 'the IdP posted to the SLO URL');
  // (node-saml looks for InResponseTo on Response elements only, so its POST path takes a
  // LogoutResponse with InResponseTo checking off; the signature is still checked.)
  out = await unsolicited.validatePostResponseAsync({ SAMLResponse: back.form.SAMLResponse, RelayState: back.form.RelayState });
} else {
  const u = new URL(back.url);
  check(u.origin + u.pathname === 'https://node-sp.test/slo', 'the IdP answered on the SLO URL, not ' + back.url);
  out = await sp.validateRedirectAsync(Object.fromEntries(u.searchParams.entries()), u.search.slice(1));
}
check(out.loggedOut === true, 'LogoutResponse accepted as a logout');
result.logout = { loggedOut: out.loggedOut };

console.log(JSON.stringify({ ok: true, result }));
process.exit(0);
