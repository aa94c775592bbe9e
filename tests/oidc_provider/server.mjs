// A real OpenID provider for the tests: panva's oidc-provider (certified OpenID Connect), started on loopback by
// tests/oidc_fixtures.py with a JSON file naming its issuer, port, clients, people and the engine's audience.
// Only what a real deployment configures is set here: the people (findAccount), a login page (the one part every
// deployment writes itself), consent granted to the engine's first-party clients, and JWT access tokens for the
// engine's audience carrying the person's groups and entitlements (as EGI Check-in and Keycloak can be set to;
// opaque ones with `access_token_format: "opaque"`, which the engine knows only by introspecting them).
import fs from 'node:fs';
import http from 'node:http';
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
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: SCOPES, audience: config.audience, accessTokenFormat: config.access_token_format || 'jwt',
        accessTokenTTL: config.access_token_ttl,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  // the engine reads who someone is and what they belong to from its access token
  extraTokenClaims: async (_ctx, token) => claimsOf(token.accountId),
  // first-party clients: the person consents by signing in
  loadExistingGrant: async (ctx) => fullGrant(ctx.oidc.provider, ctx.oidc.client.clientId,
    ctx.oidc.session.accountId),
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: { AccessToken: config.access_token_ttl, IdToken: 3600, RefreshToken: 86400, DeviceCode: 600 },
});
provider.proxy = false;

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

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
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
