// Interop check: the official Dfns TypeScript SDK (@dfns/sdk + @dfns/sdk-keysigner, pinned in
// package-lock.json) against a running dfns-emulator. Run through ./run.sh, which starts the emulator and
// points DFNS_EMULATOR_BOOTSTRAP at its bootstrap file.
//
// The tests in the describe block run in order and share the identities created along the way
// (admin session -> service account, PAT -> their own signed calls -> refusals -> archive).
import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'

import { DfnsDelegatedApiClient } from '@dfns/sdk'

import {
  apiClient,
  expectRefused,
  jwtPayload,
  keySigner,
  loadBootstrap,
  login,
  newP256KeyPair,
  obtainUserAction,
  sendWithUserAction,
  tamperingSigner,
  uniqueName,
} from './support.mjs'
import { strictProfileTests } from './strict.mjs'

const APP_METADATA = 'https://custom/app_metadata'

// Statuses documented by Dfns (see /work/shared/reference/dfns-api.md §2.3, §7):
// reused user action -> 400; missing/invalid user action -> 403; forbidden identity -> 403;
// unknown/deactivated token -> 401. The status for a credential assertion whose signature does not
// verify is not documented, so both "unauthenticated" and "forbidden" count as a refusal there.
const REUSED_USER_ACTION = 400
const INVALID_USER_ACTION = 403
const FORBIDDEN = 403
const BAD_TOKEN = 401
const BAD_SIGNATURE = [401, 403]

// What the service account and the PAT are allowed to do. It deliberately includes the create
// operations, so that refusing SA/PAT tokens to create SAs/PATs is proven to come from the identity
// rule, not from a missing permission.
const DELEGATED_OPERATIONS = [
  'Auth:ServiceAccounts:Create',
  'Auth:ServiceAccounts:Read',
  'Auth:ServiceAccounts:Update',
  'Auth:ServiceAccounts:Activate',
  'Auth:ServiceAccounts:Deactivate',
  'Auth:Pats:Create',
  'Permissions:Read',
]

describe('official Dfns SDK against dfns-emulator', () => {
  const env = loadBootstrap()
  const adminSigner = keySigner({ credId: env.admin.credId, privateKey: env.admin.privateKey })
  let admin // { authToken, signer, client }
  let permissionId
  let sa // { id, authToken, signer, client, name }
  let victimSa // a second service account that `sa` deactivates and activates
  let pat // { id, authToken, signer, client, name }

  // Identity handle for the low-level helpers (they take apiUrl/orgId/authToken/signer).
  const identity = (who) => ({ apiUrl: env.apiUrl, orgId: env.orgId, authToken: who.authToken, signer: who.signer })
  const requireSetup = (value, what) => assert.ok(value, `precondition failed earlier: ${what}`)

  before(() => {
    if (process.env.DFNS_EXPECT_TLS === '1') {
      assert.match(env.apiUrl, /^https:\/\//, 'emulator started with --tls serves https')
      assert.ok(env.caCert?.includes('BEGIN CERTIFICATE'), 'bootstrap file carries caCert with --tls')
    }
  })

  it('bootstrap admin logs in with DfnsAuthenticator and gets a JWT scoped to its org', async () => {
    const authToken = await login({ apiUrl: env.apiUrl, orgId: env.orgId, username: env.admin.username, signer: adminSigner })
    const claims = jwtPayload(authToken)
    assert.equal(claims[APP_METADATA]?.orgId, env.orgId)
    assert.equal(claims[APP_METADATA]?.userId, env.admin.userId)
    assert.equal(typeof claims.exp, 'number', 'token carries exp')
    admin = { authToken, signer: adminSigner, client: apiClient({ ...env, authToken, signer: adminSigner }) }
  })

  it('login with a tampered signature is refused', async () => {
    await expectRefused(
      login({ apiUrl: env.apiUrl, orgId: env.orgId, username: env.admin.username, signer: tamperingSigner(adminSigner) }),
      BAD_SIGNATURE,
      'POST /auth/login with a corrupted signature',
    )
  })

  it('admin session reads: lists service accounts and PATs', async () => {
    requireSetup(admin, 'admin login')
    const accounts = await admin.client.auth.listServiceAccounts()
    assert.ok(Array.isArray(accounts.items), 'service account list has items[]')
    const pats = await admin.client.auth.listPersonalAccessTokens()
    assert.ok(Array.isArray(pats.items), 'PAT list has items[]')
  })

  it('admin creates a permission for the delegated identities (signed write)', async () => {
    requireSetup(admin, 'admin login')
    const permission = await admin.client.permissions.createPermission({
      body: { name: uniqueName('sdk-interop'), operations: DELEGATED_OPERATIONS },
    })
    assert.match(permission.id, /^pm-/)
    assert.deepEqual([...permission.operations].sort(), [...DELEGATED_OPERATIONS].sort())
    permissionId = permission.id
  })

  it('admin creates a service account from a fresh P-256 key; the token comes back once', async () => {
    requireSetup(permissionId, 'permission creation')
    sa = await createServiceAccount(permissionId)
    // The victim gets the same permission so it can read itself when its token is checked below.
    victimSa = await createServiceAccount(permissionId)
  })

  async function createServiceAccount(permission) {
    const keys = newP256KeyPair()
    const name = uniqueName('sdk-interop-sa')
    const created = await admin.client.auth.createServiceAccount({
      body: { name, publicKey: keys.publicKey, permissionId: permission },
    })
    assert.equal(created.userInfo.isServiceAccount, true)
    assert.equal(created.userInfo.isActive, true)
    assert.equal(created.userInfo.name, name)
    assert.match(created.userInfo.userId, /^us-/)
    assert.equal(created.accessTokens.length, 1)
    const [token] = created.accessTokens
    assert.equal(typeof token.accessToken, 'string', 'create response carries the access token')
    assert.equal(typeof token.credId, 'string')
    assert.ok(token.credId.length > 0, 'credId is not empty')
    assert.equal(jwtPayload(token.accessToken)[APP_METADATA]?.orgId, env.orgId)
    const signer = keySigner({ credId: token.credId, privateKey: keys.privateKey })
    return {
      id: created.userInfo.userId,
      name,
      authToken: token.accessToken,
      signer,
      client: apiClient({ ...env, authToken: token.accessToken, signer }),
    }
  }

  it('admin creates a PAT from a fresh P-256 key; the token comes back once', async () => {
    requireSetup(permissionId, 'permission creation')
    const keys = newP256KeyPair()
    const name = uniqueName('sdk-interop-pat')
    const created = await admin.client.auth.createPersonalAccessToken({
      body: { name, publicKey: keys.publicKey, permissionId, daysValid: 1 },
    })
    assert.equal(created.kind, 'Pat')
    assert.equal(created.isActive, true)
    assert.equal(created.name, name)
    assert.equal(created.linkedUserId, env.admin.userId)
    assert.match(created.tokenId, /^to-/)
    assert.equal(typeof created.accessToken, 'string', 'create response carries the access token')
    assert.ok(created.credId.length > 0, 'credId is not empty')
    const claims = jwtPayload(created.accessToken)
    assert.equal(claims[APP_METADATA]?.orgId, env.orgId)
    // daysValid: 1 -> the token expires within a day (an hour of slack for clock granularity).
    const nowSeconds = Date.now() / 1000
    assert.ok(claims.exp > nowSeconds && claims.exp <= nowSeconds + 86400 + 3600, `PAT exp ${claims.exp} is within one day`)
    const signer = keySigner({ credId: created.credId, privateKey: keys.privateKey })
    pat = { id: created.tokenId, name, authToken: created.accessToken, signer, client: apiClient({ ...env, authToken: created.accessToken, signer }) }
  })

  it('reads after creation never return the access token', async () => {
    requireSetup(sa && pat, 'service account and PAT creation')
    const fetchedSa = await admin.client.auth.getServiceAccount({ serviceAccountId: sa.id })
    assert.ok(fetchedSa.accessTokens.length >= 1)
    for (const token of fetchedSa.accessTokens) assert.equal(token.accessToken, undefined)
    const fetchedPat = await admin.client.auth.getPersonalAccessToken({ tokenId: pat.id })
    assert.equal(fetchedPat.accessToken, undefined)
    const listed = await admin.client.auth.listPersonalAccessTokens()
    const mine = listed.items.find((item) => item.tokenId === pat.id)
    assert.ok(mine, 'new PAT is listed')
    assert.equal(mine.accessToken, undefined)
  })

  it('service account token reads with its own identity', async () => {
    requireSetup(sa, 'service account creation')
    const self = await sa.client.auth.getServiceAccount({ serviceAccountId: sa.id })
    assert.equal(self.userInfo.userId, sa.id)
    const listed = await sa.client.auth.listServiceAccounts()
    assert.ok(listed.items.some((item) => item.userInfo.userId === sa.id), 'service account sees itself in the list')
  })

  it('service account token makes signed writes: renames itself, deactivates and activates another', async () => {
    requireSetup(sa && victimSa, 'service account creation')
    sa.name = uniqueName('sdk-interop-sa-renamed')
    const renamed = await sa.client.auth.updateServiceAccount({ serviceAccountId: sa.id, body: { name: sa.name } })
    assert.equal(renamed.userInfo.name, sa.name)

    const deactivated = await sa.client.auth.deactivateServiceAccount({ serviceAccountId: victimSa.id })
    assert.equal(deactivated.userInfo.isActive, false)
    const activated = await sa.client.auth.activateServiceAccount({ serviceAccountId: victimSa.id })
    assert.equal(activated.userInfo.isActive, true)
  })

  it('PAT token reads with its own identity', async () => {
    requireSetup(pat, 'PAT creation')
    const self = await pat.client.auth.getPersonalAccessToken({ tokenId: pat.id })
    assert.equal(self.tokenId, pat.id)
    const listed = await pat.client.auth.listPersonalAccessTokens()
    assert.ok(listed.items.some((item) => item.tokenId === pat.id), 'PAT sees itself in the list')
  })

  it('PAT token makes a signed write: renames itself', async () => {
    requireSetup(pat, 'PAT creation')
    pat.name = uniqueName('sdk-interop-pat-renamed')
    const renamed = await pat.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: pat.name } })
    assert.equal(renamed.name, pat.name)
    const fetched = await admin.client.auth.getPersonalAccessToken({ tokenId: pat.id })
    assert.equal(fetched.name, pat.name)
  })

  it('empty payloads: "" with no body (SDK 0.8.21 deactivate) and "" with body {} (Python SDK) are accepted', async () => {
    requireSetup(sa && victimSa, 'service account creation')
    const base = `/auth/service-accounts/${victimSa.id}`
    const noBody = await obtainUserAction(identity(sa), { method: 'PUT', path: `${base}/deactivate`, payload: '' })
    const deactivated = await sendWithUserAction(identity(sa), { method: 'PUT', path: `${base}/deactivate`, userAction: noBody })
    assert.equal(deactivated.userInfo.isActive, false)
    const emptyObject = await obtainUserAction(identity(sa), { method: 'PUT', path: `${base}/activate`, payload: '' })
    const activated = await sendWithUserAction(identity(sa), { method: 'PUT', path: `${base}/activate`, body: {}, userAction: emptyObject })
    assert.equal(activated.userInfo.isActive, true)
  })

  it('a deactivated service account token gets 401 until it is activated again', async () => {
    requireSetup(victimSa, 'service account creation')
    await admin.client.auth.deactivateServiceAccount({ serviceAccountId: victimSa.id })
    await expectRefused(
      victimSa.client.auth.getServiceAccount({ serviceAccountId: victimSa.id }),
      BAD_TOKEN,
      'GET /auth/service-accounts/{id} with a deactivated service account token',
    )
    await admin.client.auth.activateServiceAccount({ serviceAccountId: victimSa.id })
    const self = await victimSa.client.auth.getServiceAccount({ serviceAccountId: victimSa.id })
    assert.equal(self.userInfo.isActive, true)
  })

  it('a user action signed with a tampered signature is refused and changes nothing', async () => {
    requireSetup(sa && victimSa, 'service account creation')
    const tampered = apiClient({ ...env, authToken: sa.authToken, signer: tamperingSigner(sa.signer) })
    await expectRefused(
      tampered.auth.deactivateServiceAccount({ serviceAccountId: victimSa.id }),
      BAD_SIGNATURE,
      'POST /auth/action with a corrupted signature (for PUT .../deactivate)',
    )
    const victim = await admin.client.auth.getServiceAccount({ serviceAccountId: victimSa.id })
    assert.equal(victim.userInfo.isActive, true, 'victim service account is still active')
  })

  it('a write without a user action is refused', async () => {
    requireSetup(pat, 'PAT creation')
    await expectRefused(
      sendWithUserAction(identity(pat), {
        method: 'PUT',
        path: `/auth/pats/${pat.id}`,
        body: { name: uniqueName('never-applied') },
        userAction: undefined,
      }),
      INVALID_USER_ACTION,
      'PUT /auth/pats/{id} without X-DFNS-USERACTION',
    )
  })

  it('a replayed user action is refused and the replay changes nothing', async () => {
    requireSetup(pat, 'PAT creation')
    const path = `/auth/pats/${pat.id}`
    const body = { name: uniqueName('sdk-interop-pat-once') }
    const userAction = await obtainUserAction(identity(pat), { method: 'PUT', path, body })

    const first = await sendWithUserAction(identity(pat), { method: 'PUT', path, body, userAction })
    assert.equal(first.name, body.name, 'first use of the user action is accepted')
    pat.name = body.name

    await expectRefused(
      sendWithUserAction(identity(pat), { method: 'PUT', path, body, userAction }),
      REUSED_USER_ACTION,
      'second PUT /auth/pats/{id} with the same X-DFNS-USERACTION',
    )
  })

  it('a user action issued for one path is refused on another', async () => {
    requireSetup(sa && victimSa, 'service account creation')
    const body = { name: uniqueName('sdk-interop-wrong-path') }
    const userAction = await obtainUserAction(identity(sa), {
      method: 'PUT',
      path: `/auth/service-accounts/${victimSa.id}`,
      body,
    })
    await expectRefused(
      sendWithUserAction(identity(sa), { method: 'PUT', path: `/auth/service-accounts/${sa.id}`, body, userAction }),
      INVALID_USER_ACTION,
      'PUT /auth/service-accounts/{self} with a user action issued for /auth/service-accounts/{other}',
    )
    const self = await admin.client.auth.getServiceAccount({ serviceAccountId: sa.id })
    assert.equal(self.userInfo.name, sa.name, 'the misused user action renamed nothing')
  })

  it('assignments: assign, list, and revoke through the delegated client, whose signed path carries ?force', async () => {
    requireSetup(admin && victimSa, 'admin login and service account creation')
    const extra = await admin.client.permissions.createPermission({
      body: { name: uniqueName('sdk-interop-extra'), operations: ['Permissions:Read'] },
    })
    const assignment = await admin.client.permissions.createAssignment({
      permissionId: extra.id,
      body: { identityId: victimSa.id },
    })
    assert.match(assignment.id, /^as-/)
    assert.equal(assignment.identityId, victimSa.id)
    const listed = await admin.client.permissions.listAssignments({ permissionId: extra.id })
    assert.ok(listed.items.some((item) => item.id === assignment.id), 'new assignment is listed')

    // DfnsDelegatedApiClient signs `path?query` (the plain client signs only the path); the emulator
    // must compare paths without the query, as Dfns does.
    const delegated = new DfnsDelegatedApiClient({ baseUrl: env.apiUrl, orgId: env.orgId, authToken: admin.authToken })
    const request = { permissionId: extra.id, assignmentId: assignment.id, query: { force: true } }
    const challenge = await delegated.permissions.deleteAssignmentInit(request)
    const firstFactor = await admin.signer.sign(challenge)
    await delegated.permissions.deleteAssignmentComplete(request, {
      challengeIdentifier: challenge.challengeIdentifier,
      firstFactor,
    })
    const after = await admin.client.permissions.listAssignments({ permissionId: extra.id })
    assert.ok(!after.items.some((item) => item.id === assignment.id), 'revoked assignment is gone')
  })

  for (const [caller, target] of [
    ['PAT', 'PAT'],
    ['PAT', 'service account'],
    ['service account', 'service account'],
    ['service account', 'PAT'],
  ]) {
    it(`a ${caller} token may not create a ${target} (403)`, async () => {
      const who = caller === 'PAT' ? pat : sa
      requireSetup(who, `${caller} creation`)
      const name = uniqueName('sdk-interop-forbidden')
      const body = { name, publicKey: newP256KeyPair().publicKey }
      const call =
        target === 'PAT'
          ? who.client.auth.createPersonalAccessToken({ body })
          : who.client.auth.createServiceAccount({ body })
      const error = await expectRefused(call, FORBIDDEN, `POST ${target === 'PAT' ? '/auth/pats' : '/auth/service-accounts'} with a ${caller} token`)
      assert.match(error.message, /service.?account|personal.?access.?token|\bpats?\b/i, 'message says which identity may not do this')

      const listed =
        target === 'PAT'
          ? (await admin.client.auth.listPersonalAccessTokens()).items.map((item) => item.name)
          : (await admin.client.auth.listServiceAccounts()).items.map((item) => item.userInfo.name)
      assert.ok(!listed.includes(name), `no ${target} named ${name} was created`)
    })
  }

  it('archiving the service accounts and the PAT revokes their tokens', async () => {
    requireSetup(sa && victimSa && pat, 'service account and PAT creation')
    for (const account of [sa, victimSa]) {
      await admin.client.auth.archiveServiceAccount({ serviceAccountId: account.id })
      await expectRefused(
        account.client.auth.getServiceAccount({ serviceAccountId: account.id }),
        BAD_TOKEN,
        'GET /auth/service-accounts/{id} with an archived service account token',
      )
    }
    await admin.client.auth.archivePersonalAccessToken({ tokenId: pat.id })
    await expectRefused(
      pat.client.auth.listPersonalAccessTokens(),
      BAD_TOKEN,
      'GET /auth/pats with an archived PAT token',
    )
  })
})

strictProfileTests(loadBootstrap())
