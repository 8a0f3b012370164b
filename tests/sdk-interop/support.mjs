// Shared plumbing for the SDK interop test: where the emulator is, fresh keys, SDK clients built the way
// a Dfns user builds them, a signer that corrupts its signature, and the SDK's own low-level calls for
// the cases the high-level client hides (capturing a user action token to replay or misuse it).
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'

import { BaseAuthApi, DfnsApiClient, DfnsAuthenticator, DfnsError } from '@dfns/sdk'
import { simpleFetch } from '@dfns/sdk/utils/fetch.js'
import { AsymmetricKeySigner } from '@dfns/sdk-keysigner'

/** Reads the bootstrap file the emulator wrote (path from DFNS_EMULATOR_BOOTSTRAP). */
export function loadBootstrap() {
  const path = process.env.DFNS_EMULATOR_BOOTSTRAP
  if (!path) {
    throw new Error('DFNS_EMULATOR_BOOTSTRAP must name the bootstrap file of a running dfns-emulator (see run.sh)')
  }
  const bootstrap = JSON.parse(fs.readFileSync(path, 'utf8'))
  for (const field of ['apiUrl', 'orgId', 'admin']) {
    assert.ok(bootstrap[field], `bootstrap file ${path} lacks "${field}"`)
  }
  for (const field of ['userId', 'username', 'credId', 'privateKey']) {
    assert.ok(bootstrap.admin[field], `bootstrap file ${path} lacks "admin.${field}"`)
  }
  // Optional override, e.g. to go through a proxy; the bootstrap URL is the default.
  const apiUrl = process.env.DFNS_EMULATOR_URL || bootstrap.apiUrl
  return { ...bootstrap, apiUrl }
}

/** A fresh P-256 key pair: SPKI PEM public key (what Dfns registers) and PKCS#8 PEM private key. */
export function newP256KeyPair() {
  return crypto.generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
}

/** Short random suffix so names never collide when the test runs twice against one emulator. */
export function uniqueName(prefix) {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`
}

/** Logs in with the official DfnsAuthenticator and returns the session token. */
export async function login({ apiUrl, orgId, username, signer }) {
  const { token } = await new DfnsAuthenticator({ baseUrl: apiUrl, signer }).login({ orgId, username })
  assert.equal(typeof token, 'string', 'login response has a string "token"')
  return token
}

/** An SDK client for one identity. orgId is passed so the SDK checks the token's org claim locally. */
export function apiClient({ apiUrl, orgId, authToken, signer }) {
  return new DfnsApiClient({ baseUrl: apiUrl, orgId, authToken, signer })
}

export function keySigner({ credId, privateKey }) {
  return new AsymmetricKeySigner({ credId, privateKey })
}

/**
 * Wraps a signer and flips the last byte of every signature it produces. The last byte of a DER ECDSA
 * signature is inside `s`, so the signature stays well-formed DER but no longer verifies.
 */
export function tamperingSigner(inner) {
  return {
    async sign(challenge) {
      const assertion = await inner.sign(challenge)
      const signature = Buffer.from(assertion.credentialAssertion.signature, 'base64url')
      signature[signature.length - 1] ^= 0x01
      return {
        ...assertion,
        credentialAssertion: { ...assertion.credentialAssertion, signature: signature.toString('base64url') },
      }
    },
  }
}

/** Payload of a JWT, decoded without verifying it (what the SDK itself does with the bearer token). */
export function jwtPayload(token) {
  const parts = token.split('.')
  assert.equal(parts.length, 3, 'token is a three-part JWT')
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
}

/**
 * Runs the user-action flow with the SDK's own BaseAuthApi and signer, but returns the user action token
 * instead of spending it, so a test can send it itself (twice, or on another path). The signed payload
 * is the JSON of `body` ('' without one, as the SDK does) unless `payload` gives it verbatim.
 */
export async function obtainUserAction({ apiUrl, orgId, authToken, signer }, { method, path, body, payload }) {
  const apiOptions = { baseUrl: apiUrl, orgId, authToken }
  const challenge = await BaseAuthApi.createUserActionChallenge(
    {
      userActionPayload: payload ?? (body === undefined ? '' : JSON.stringify(body)),
      userActionHttpMethod: method,
      userActionHttpPath: path,
      userActionServerKind: 'Api',
    },
    apiOptions,
  )
  const assertion = await signer.sign(challenge)
  const { userAction } = await BaseAuthApi.signUserActionChallenge(
    { challengeIdentifier: challenge.challengeIdentifier, firstFactor: assertion },
    apiOptions,
  )
  assert.equal(typeof userAction, 'string', 'action response has a string "userAction"')
  return userAction
}

/** Sends one request through the SDK's transport (same headers, JSON and error handling) with a given user action. */
export async function sendWithUserAction({ apiUrl, orgId, authToken }, { method, path, body, userAction }) {
  const response = await simpleFetch(path, {
    method,
    body,
    // Leaving userAction undefined sends no header at all (not the string "undefined").
    headers: userAction === undefined ? {} : { 'x-dfns-useraction': userAction },
    apiOptions: { baseUrl: apiUrl, orgId, authToken },
  })
  return response.json()
}

/**
 * Asserts that `promise` rejects with the SDK's DfnsError carrying one of `statuses`, and that the
 * emulator's error body has the documented `{"error": {"message": ...}}` shape. Returns the error.
 */
export async function expectRefused(promise, statuses, what) {
  const allowed = Array.isArray(statuses) ? statuses : [statuses]
  let caught
  try {
    await promise
  } catch (error) {
    caught = error
  }
  assert.ok(caught, `${what}: expected HTTP ${allowed.join(' or ')}, but the call succeeded`)
  assert.ok(
    caught instanceof DfnsError,
    `${what}: expected a DfnsError (JSON error body), got ${caught?.name}: ${caught?.message}`,
  )
  assert.ok(
    allowed.includes(caught.httpStatus),
    `${what}: expected HTTP ${allowed.join(' or ')}, got ${caught.httpStatus} (${caught.message})`,
  )
  const body = caught.context?.body
  assert.equal(typeof body?.error?.message, 'string', `${what}: error body has error.message: ${JSON.stringify(body)}`)
  assert.ok(body.error.message.length > 0, `${what}: error.message is not empty`)
  return caught
}
