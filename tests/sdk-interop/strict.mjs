// The emulator's strict profile (its default) through the official SDK: what Dfns' reference pages say
// and the emulator used to be kinder about. Registered from interop.test.mjs so it runs after the main
// suite in the same process (these tests change the approval policy through /_emulator/ and put it back).
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { describe, it } from 'node:test'

import { PolicyPendingError } from '@dfns/sdk'

import { apiClient, expectRefused, jwtPayload, keySigner, login, newP256KeyPair, uniqueName } from './support.mjs'

const FORBIDDEN = 403

/** `SHA256:` + unpadded base64 of SHA-256 over the key's SPKI DER: the emulator's fingerprint form. */
function fingerprint(publicKeyPem) {
  const der = crypto.createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' })
  return `SHA256:${crypto.createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`
}

async function control(env, method, path, body) {
  const response = await fetch(new URL(path, env.apiUrl), {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  assert.equal(response.status, 200, `${method} ${path}: ${await response.clone().text()}`)
  return response.json()
}

export function strictProfileTests(env) {
  describe('strict profile through the official SDK', () => {
    const adminSigner = keySigner({ credId: env.admin.credId, privateKey: env.admin.privateKey })
    let admin
    let sa // { id, keys, token, client }
    let pat

    it('the emulator runs the strict profile', async () => {
      const profile = await control(env, 'GET', '/_emulator/profile')
      assert.equal(profile.identityKeyRotation, 'refused')
      assert.equal(profile.externalIdInResponses, false)
      assert.equal(profile.publicKeyForm, 'fingerprint')
      assert.equal(profile.defaultDaysValid, null)
      const authToken = await login({ apiUrl: env.apiUrl, orgId: env.orgId, username: env.admin.username, signer: adminSigner })
      admin = apiClient({ ...env, authToken, signer: adminSigner })
    })

    it('service account and PAT replies: no externalId, an ap- linkedAppId, a SHA256 fingerprint, a token without exp', async () => {
      const permission = await admin.permissions.createPermission({
        body: { name: uniqueName('strict'), operations: ['Auth:ServiceAccounts:Read'] },
      })
      const saKeys = newP256KeyPair()
      const created = await admin.auth.createServiceAccount({
        body: { name: uniqueName('strict-sa'), publicKey: saKeys.publicKey, externalId: 'k8s-uid', permissionId: permission.id },
      })
      const patKeys = newP256KeyPair()
      const createdPat = await admin.auth.createPersonalAccessToken({
        body: { name: uniqueName('strict-pat'), publicKey: patKeys.publicKey, externalId: 'k8s-uid' },
      })
      const [token] = created.accessTokens
      const replies = [
        created,
        createdPat,
        await admin.auth.getServiceAccount({ serviceAccountId: created.userInfo.userId }),
        await admin.auth.listServiceAccounts(),
        await admin.auth.getPersonalAccessToken({ tokenId: createdPat.tokenId }),
        await admin.auth.listPersonalAccessTokens(),
      ]
      for (const reply of replies) assert.ok(!JSON.stringify(reply).includes('externalId'), JSON.stringify(reply))
      assert.match(token.linkedAppId, /^ap-/)
      assert.equal(createdPat.linkedAppId, token.linkedAppId)
      assert.equal(token.publicKey, fingerprint(saKeys.publicKey))
      assert.equal(createdPat.publicKey, fingerprint(patKeys.publicKey))
      for (const jwt of [token.accessToken, createdPat.accessToken]) {
        assert.equal(jwtPayload(jwt).exp, undefined, 'created without daysValid: no exp')
      }
      const saSigner = keySigner({ credId: token.credId, privateKey: saKeys.privateKey })
      sa = { id: created.userInfo.userId, client: apiClient({ ...env, authToken: token.accessToken, signer: saSigner }) }
      const patSigner = keySigner({ credId: createdPat.credId, privateKey: patKeys.privateKey })
      pat = { id: createdPat.tokenId, client: apiClient({ ...env, authToken: createdPat.accessToken, signer: patSigner }) }
      // The SDK parses the token locally; a token without exp works for reads and signed writes.
      await sa.client.auth.getServiceAccount({ serviceAccountId: sa.id })
      await pat.client.auth.updatePersonalAccessToken({ tokenId: pat.id, body: { name: uniqueName('renamed') } })
    })

    it('List Credentials: refused to a service account, allowed to a PAT and a user', async () => {
      assert.ok(sa && pat, 'precondition: identities created')
      await expectRefused(sa.client.auth.listCredentials(), FORBIDDEN, 'GET /auth/credentials as a service account')
      const own = await pat.client.auth.listCredentials()
      assert.equal(own.items.length, 1, "the PAT's own key")
      await admin.auth.listCredentials()
    })

    it('credential endpoints refuse service-account and PAT callers', async () => {
      assert.ok(sa && pat, 'precondition: identities created')
      for (const [who, client] of [['service account', sa.client], ['PAT', pat.client]]) {
        await expectRefused(
          client.auth.createCredentialChallenge({ body: { kind: 'Key' } }),
          FORBIDDEN,
          `POST /auth/credentials/init as a ${who}`,
        )
        await expectRefused(
          client.auth.deactivateCredential({ body: { credentialUuid: 'cr-00000-00000-0000000000000000' } }),
          FORBIDDEN,
          `PUT /auth/credentials/deactivate as a ${who}`,
        )
      }
    })

    it('an approval policy: assignment answers 202 (PolicyPendingError); approved, it lands', async () => {
      assert.ok(sa, 'precondition: service account created')
      await control(env, 'PUT', '/_emulator/approvals', { operations: ['assignment', 'pat-create'] })
      try {
        const permission = await admin.permissions.createPermission({
          body: { name: uniqueName('held'), operations: ['Permissions:Read'] },
        })
        let pending
        try {
          await admin.permissions.createAssignment({ permissionId: permission.id, body: { identityId: sa.id } })
        } catch (error) {
          pending = error
        }
        assert.ok(pending instanceof PolicyPendingError, `expected PolicyPendingError, got ${pending}`)
        const changeRequest = pending.context
        assert.match(changeRequest.id, /^cr-/)
        assert.equal(changeRequest.kind, 'Assignment')
        assert.equal(changeRequest.status, 'Pending')
        const approval = await admin.policies.getApproval({ approvalId: changeRequest.approvalId })
        assert.equal(approval.status, 'Pending')
        assert.equal(approval.activity.kind, 'Permissions:Assign')
        let listed = await admin.permissions.listAssignments({ permissionId: permission.id })
        assert.equal(listed.items.length, 0, 'nothing assigned while pending')

        const applied = await control(env, 'POST', `/_emulator/change-requests/${changeRequest.id}/approve`)
        assert.equal(applied.status, 'Applied')
        listed = await admin.permissions.listAssignments({ permissionId: permission.id })
        assert.deepEqual(listed.items.map((a) => a.identityId), [sa.id])
        assert.equal((await admin.policies.getApproval({ approvalId: changeRequest.approvalId })).status, 'Approved')

        // A denied PAT create creates nothing.
        const name = uniqueName('denied-pat')
        let denied
        try {
          await admin.auth.createPersonalAccessToken({ body: { name, publicKey: newP256KeyPair().publicKey } })
        } catch (error) {
          denied = error
        }
        assert.ok(denied instanceof PolicyPendingError, `expected PolicyPendingError, got ${denied}`)
        await control(env, 'POST', `/_emulator/change-requests/${denied.context.id}/deny`, { reason: 'no' })
        const decided = await admin.policies.getApproval({ approvalId: denied.context.approvalId })
        assert.equal(decided.status, 'Denied')
        assert.equal(decided.decisions[0].reason, 'no')
        const pats = await admin.auth.listPersonalAccessTokens()
        assert.ok(!pats.items.some((p) => p.name === name), 'no PAT was created')
      } finally {
        await control(env, 'PUT', '/_emulator/approvals', { operations: [] })
      }
    })
  })
}
