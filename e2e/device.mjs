// The OAuth 2.0 Device Authorization Grant (RFC 8628) run by openid-client v6 against qiao's
// OpenID Provider. The Go test that starts it plays the person in a browser: this script prints a
// line {"device": verification_uri_complete, "user_code": …, "interval": …} and polls the token
// endpoint meanwhile — authorization_pending and slow_down are openid-client's to handle — until
// the person approved. It then checks the ID token (signature against the JWKS), uses the
// refresh token, and revokes it.
//
// Environment: ISSUER.
import * as client from 'openid-client';

const issuer = new URL(process.env.ISSUER ?? '');
const insecure = { execute: [client.allowInsecureRequests] }; // http on loopback only
function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

try {
  const sase = await client.discovery(issuer, 'sase-client', undefined, client.None(), insecure);
  client.enableNonRepudiationChecks(sase);
  const md = sase.serverMetadata();
  check(md.device_authorization_endpoint === issuer.href + '/device_authorization', 'device_authorization_endpoint advertised');
  check(md.grant_types_supported.includes('urn:ietf:params:oauth:grant-type:device_code'), 'device_code grant advertised');

  const da = await client.initiateDeviceAuthorization(sase, { scope: 'openid profile offline_access' });
  check(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/.test(da.user_code), `user code ${da.user_code}`);
  console.log(JSON.stringify({ device: da.verification_uri_complete, user_code: da.user_code, interval: da.interval }));

  const tokens = await client.pollDeviceAuthorizationGrant(sase, da);
  const claims = tokens.claims();
  check(claims.iss === issuer.href, 'ID token issuer'); // openid-client checked aud, exp and the signature
  check(tokens.refresh_token, 'a refresh token (offline_access)');

  const refreshed = await client.refreshTokenGrant(sase, tokens.refresh_token);
  check(refreshed.access_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh rotates');
  await client.tokenRevocation(sase, refreshed.refresh_token);
  let revoked = false;
  try {
    await client.refreshTokenGrant(sase, refreshed.refresh_token);
  } catch (e) {
    revoked = e.error === 'invalid_grant' || e.cause?.error === 'invalid_grant';
  }
  check(revoked, 'a revoked refresh token is refused');

  console.log(JSON.stringify({ ok: true, result: { sub: claims.sub, amr: claims.amr, name: claims.name, user_code: da.user_code } }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.stack ?? e), code: e?.error, cause: e?.cause?.error }));
  process.exitCode = 1;
}
