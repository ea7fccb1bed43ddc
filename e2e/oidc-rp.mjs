// An independent, certified relying party (openid-client v6) run against qiao's OpenID Provider.
// The Go test that starts it plays the person in the browser: this script prints a line
// {"browse": URL} and reads back the URL the browser ended at. Everything else — discovery,
// PKCE, state and nonce, ID token signature and claims checks, userinfo, refresh, introspection,
// revocation, end_session and client_credentials — is openid-client's own code.
//
// Environment: ISSUER, REDIRECT_URI, POST_LOGOUT_URI, SERVICE_ID, SERVICE_SECRET.
import * as client from 'openid-client';
import * as readline from 'node:readline';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const issuer = new URL(env('ISSUER'));
const insecure = { execute: [client.allowInsecureRequests] }; // http on loopback only

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function browse(url) {
  console.log(JSON.stringify({ browse: url.href }));
  const { value, done } = await lines.next();
  if (done) throw new Error('the test closed stdin');
  return new URL(value.trim());
}
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}
async function refused(p, code, what) {
  try {
    await p;
  } catch (e) {
    check(e.error === code || e.cause?.error === code, `${what}: expected ${code}, got ${e.error ?? e.message}`);
    return;
  }
  throw new Error(`${what}: expected ${code}, but it succeeded`);
}

const result = {};

// The SASE client: a public native app with PKCE and a loopback redirect.
const sase = await client.discovery(issuer, 'sase-client', undefined, client.None(), insecure);
client.enableNonRepudiationChecks(sase); // check ID token signatures against the JWKS
result.discovery = { issuer: sase.serverMetadata().issuer, pkce: sase.serverMetadata().supportsPKCE() };
check(sase.serverMetadata().issuer === issuer.href, 'issuer matches');

const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authURL = client.buildAuthorizationUrl(sase, {
  redirect_uri: env('REDIRECT_URI'),
  scope: 'openid profile email offline_access groups',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  state,
  nonce,
  idp_hint: 'wecom',
});
const callback = await browse(authURL);
const tokens = await client.authorizationCodeGrant(sase, callback, {
  pkceCodeVerifier: verifier,
  expectedState: state,
  expectedNonce: nonce,
  idTokenExpected: true,
});
const claims = tokens.claims();
check(claims.name === '张三' && claims.amr?.includes('wecom_qr') && claims.idp === 'wecom', 'ID token claims');
check(typeof tokens.refresh_token === 'string', 'a refresh token for offline_access');
result.id_token = claims;

const userinfo = await client.fetchUserInfo(sase, tokens.access_token, claims.sub);
check(userinfo.sub === claims.sub && userinfo.preferred_username === 'zhangsan', 'userinfo');
result.userinfo = userinfo;

// Refresh rotates the refresh token.
const refreshed = await client.refreshTokenGrant(sase, tokens.refresh_token);
check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh rotates');
check(refreshed.claims().sub === claims.sub, 'refreshed ID token names the same person');

// A resource server introspects (client_secret_basic, as the library defaults to post).
const service = await client.discovery(issuer, env('SERVICE_ID'), undefined, client.ClientSecretBasic(env('SERVICE_SECRET')), insecure);
const active = await client.tokenIntrospection(service, refreshed.access_token);
check(active.active === true && active.sub === claims.sub && active.client_id === 'sase-client', 'introspection: active');
result.introspection = active;

// The client revokes its refresh token: the grant ends, its access token too.
await client.tokenRevocation(sase, refreshed.refresh_token);
check((await client.tokenIntrospection(service, refreshed.access_token)).active === false, 'revoked grant is inactive');
await refused(client.refreshTokenGrant(sase, refreshed.refresh_token), 'invalid_grant', 'refresh after revocation');
// The first refresh token was rotated away: presenting it again is refused.
await refused(client.refreshTokenGrant(sase, tokens.refresh_token), 'invalid_grant', 'rotated refresh token reused');

// RP-initiated logout.
const logoutURL = client.buildEndSessionUrl(sase, {
  id_token_hint: tokens.id_token,
  post_logout_redirect_uri: env('POST_LOGOUT_URI'),
  state: 'bye',
});
const after = await browse(logoutURL);
check(after.searchParams.get('state') === 'bye', 'end_session returned to the post-logout URI with the state');

// A service client with client_credentials.
const cc = await client.clientCredentialsGrant(service);
check(typeof cc.access_token === 'string', 'client_credentials token');
const ccInfo = await client.tokenIntrospection(service, cc.access_token);
check(ccInfo.active === true && ccInfo.client_id === env('SERVICE_ID'), 'client_credentials token introspects');
result.client_credentials = { active: ccInfo.active, client_id: ccInfo.client_id };

console.log(JSON.stringify({ ok: true, result }));
process.exit(0);
