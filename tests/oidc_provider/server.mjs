// A real OpenID provider for the tests: panva's oidc-provider (certified OpenID Connect), started on loopback by
// tests/oidc_fixtures.py with a JSON file naming its issuer, port, clients, people and the engine's audience.
// Only what a real deployment configures is set here: the people (findAccount), a login page (the one part every
// deployment writes itself), consent granted to the engine's first-party clients, and JWT access tokens for the
// engine's audience carrying the person's groups and entitlements (as EGI Check-in and Keycloak can be set to;
// opaque ones with `access_token_format: "opaque"`, which the engine knows only by introspecting them). With
// `introspect_jwt: true` it also answers for its JWT access tokens, as Keycloak and EGI Check-in do (oidc-provider
// itself introspects no JWT): active while the grant they came from stands and it still knows the person (its
// opaque tokens are then answered as not active: the engine asks only about access tokens).
import fs from 'node:fs';
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { Provider } from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
// The people are read from their file at each use: the tests remove someone as an admin would at a real provider.
const peopleOf = () => (config.accounts_file ? JSON.parse(fs.readFileSync(config.accounts_file, 'utf8'))
  : config.accounts);
const RESOURCE = 'urn:twinengine:api';
const SCOPES = 'openid profile email groups entitlements offline_access';
// What the provider says about a person now (undefined: it knows them no more): put in their access tokens when
// issued, and in the answer about a token when the engine introspects one, as Keycloak's introspection does.
const claimsOf = (accountId) => {
  const person = peopleOf()[accountId];
  if (!person) return undefined;
  const { name, email, groups, eduperson_entitlement: entitlements, suspended } = person;
  return { name, email, groups, eduperson_entitlement: entitlements, ...(suspended ? { account_disabled: true } : {}) };
};
// What the provider's admins set for a service's own tokens (client credentials), as Keycloak's hardcoded claim
// mappers do: read at each use, so that a test can change them as an admin would.
const servicesOf = () => (config.services_file ? JSON.parse(fs.readFileSync(config.services_file, 'utf8')) : {});
const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function fullGrant(op, clientId, accountId) {
  const grant = new op.Grant({ clientId, accountId });
  grant.addOIDCScope(SCOPES);
  grant.addOIDCClaims(['name', 'preferred_username', 'email', 'email_verified', 'groups', 'eduperson_entitlement']);
  grant.addResourceScope(RESOURCE, SCOPES);
  await grant.save();
  return grant;
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  ...(config.jwks ? { jwks: config.jwks } : {}),
  cookies: { keys: ['twinengine-test-cookie-key'] },
  scopes: SCOPES.split(' '),
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
    entitlements: ['eduperson_entitlement'],
  },
  conformIdTokenClaims: false,
  findAccount: async (_ctx, sub) => {
    const people = peopleOf();
    return people[sub] ? { accountId: sub, claims: async () => ({ sub, ...people[sub] }) } : undefined;
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true }, // services sign in with their own client and secret
    // resource servers ask whether a token still stands; one of a person the provider no longer knows does not
    introspection: {
      enabled: true,
      allowedPolicy: async (_ctx, _client, token) => {
        if (!token.accountId) return true;
        const now = claimsOf(token.accountId);
        if (now) token.extra = now; // the answer tells the person's groups as they are now
        return Boolean(now);
      },
    },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    // a client with a backchannel_logout_uri is sent a signed logout token when a person's session here ends
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      // another resource a client asks for (RFC 8707: a data space's own audience) is its own audience
      getResourceServerInfo: (_ctx, resource) => ({
        scope: SCOPES, audience: resource === RESOURCE ? config.audience : resource,
        accessTokenFormat: config.access_token_format || 'jwt',
        accessTokenTTL: config.access_token_ttl,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  // the engine reads who someone is and what they belong to from its access token (and, where this provider
  // introspects its JWTs, the grant the token came from: the introspection below looks it up)
  extraTokenClaims: async (_ctx, token) => {
    if (!token.accountId) return servicesOf()[token.clientId]; // a service's own token: its client's claims
    const claims = claimsOf(token.accountId);
    return claims && config.introspect_jwt && token.grantId ? { ...claims, grant_id: token.grantId } : claims;
  },
  // first-party clients: the person consents by signing in
  loadExistingGrant: async (ctx) => fullGrant(ctx.oidc.provider, ctx.oidc.client.clientId,
    ctx.oidc.session.accountId),
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // its outgoing requests (the back-channel logout tokens) refuse loopback addresses, which is where the engine of
  // the tests listens: a deployment's provider reaches the engine on a routable address instead
  fetch: (url, options) => globalThis.fetch(url, { ...options, dispatcher: undefined }),
  ttl: { AccessToken: config.access_token_ttl, IdToken: 3600, RefreshToken: 86400, DeviceCode: 600 },
});
provider.proxy = false;
provider.on('backchannel.error', (_ctx, err, client) => process.stdout.write(
  `back-channel logout to ${client.clientId} failed: ${err.message} ${err.cause || ""}\n`));

function body(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(new URLSearchParams(data)));
  });
}

function page(res, status, html) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><html><head><title>Loopback provider</title></head><body>${html}</body></html>`);
}

// Keycloak's answer about one of its JWT access tokens, for a client with its credentials (HTTP Basic): active
// while the signature and expiry hold, the grant it came from stands (not revoked by a sign-out or a refresh
// token replayed) and the person is still known; the person's claims as they are now, as for opaque tokens.
const keys = createRemoteJWKSet(new URL(`${config.issuer}/jwks`));
async function introspectJwt(req, res) {
  const params = await body(req);
  const [id, secret] = Buffer.from((req.headers.authorization || '').replace(/^Basic /, ''), 'base64')
    .toString().split(':').map(decodeURIComponent);
  const client = config.clients.find((c) => c.client_id === id && c.client_secret && c.client_secret === secret);
  res.writeHead(client ? 200 : 401, { 'Content-Type': 'application/json' });
  if (!client) return res.end(JSON.stringify({ error: 'invalid_client' }));
  let answer = { active: false };
  try {
    const { payload } = await jwtVerify(params.get('token') || '', keys, { issuer: config.issuer });
    const grant = payload.grant_id ? await provider.Grant.find(payload.grant_id) : undefined;
    const now = claimsOf(payload.sub);
    if (grant && now) answer = { ...payload, ...now, active: true };
  } catch { /* not one of its tokens, or expired: not active */ }
  return res.end(JSON.stringify(answer));
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  if (config.introspect_jwt && req.method === 'POST' && req.url.split('?')[0] === '/token/introspection') {
    return introspectJwt(req, res);
  }
  const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(req.url.split('?')[0]);
  if (!match) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === 'consent') { // native clients are asked again; first-party: granted
      const grant = await fullGrant(provider, details.params.client_id, details.session.accountId);
      return await provider.interactionFinished(req, res, { consent: { grantId: grant.jti } },
        { mergeWithLastSubmission: true });
    }
    if (req.method === 'GET') {
      return page(res, 200, `<h1>Sign in to the loopback provider</h1>
        <form method="post" action="/interaction/${escape(details.uid)}/login">
        <label>Username <input name="login" autocomplete="username"></label>
        <button type="submit">Sign in</button></form>`);
    }
    const login = (await body(req)).get('login') || '';
    if (!peopleOf()[login]) return page(res, 400, `<p class="error">No such person: ${escape(login)}</p>`);
    return await provider.interactionFinished(req, res, { login: { accountId: login } },
      { mergeWithLastSubmission: false });
  } catch (err) {
    return page(res, 400, `<p class="error">${escape(err.message)}</p>`);
  }
});
server.listen(config.port, '127.0.0.1', () => process.stdout.write(`listening ${config.port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
