// A workload as Dfns users write one, for the renewal tests: every round (2 s by default) it
// re-reads its credential from a directory laid out like a Kubernetes Secret volume, builds an
// official SDK client from it, and makes one authenticated read and one signed user action.
//
// Usage: node renewal-probe.mjs --dir DIR [--seconds N] [--interval-ms MS]
//   DIR holds DFNS_API_URL, DFNS_AUTH_TOKEN, DFNS_CRED_ID, DFNS_PRIVATE_KEY and optionally
//   DFNS_ORG_ID, one file each (a Secret volume mount). Runs until SIGTERM/SIGINT, or N seconds.
//
// Output: one JSON line per call on stdout,
//   {"t": ISO time, "round": n, "call": "read"|"sign", "ok": bool, "status": HTTP status|null, "error": text}
// and nothing else. It never prints a token or a key: error texts have every credential value
// of the round replaced by "[redacted]".
//
// The calls, allowed to a service account with a role holding Auth:ServiceAccounts:Read and
// Auth:ServiceAccounts:Update, and to any PAT (PAT routes other than create need no permission):
//   read: GET its own record  (GET /auth/service-accounts/{userId} or GET /auth/pats/{tokenId})
//   sign: PUT its own record with the name it already has (a signed write that changes nothing,
//         so an operator keeping the display name never sees a change to undo).
// Which identity it is comes from the token's claims, so the probe follows a renewal that
// brings a new service account or PAT.
import fs from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'

import { DfnsApiClient, DfnsError } from '@dfns/sdk'
import { AsymmetricKeySigner } from '@dfns/sdk-keysigner'

const FILES = ['DFNS_API_URL', 'DFNS_AUTH_TOKEN', 'DFNS_CRED_ID', 'DFNS_PRIVATE_KEY']
const CLAIMS = 'https://custom/app_metadata'
const CALL_TIMEOUT_MS = 10_000

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    seconds: { type: 'string' },
    'interval-ms': { type: 'string', default: '2000' },
  },
})
if (!args.dir) {
  process.stderr.write('renewal-probe: --dir DIR is required\n')
  process.exit(2)
}
const intervalMs = Number(args['interval-ms'])
const endAt = args.seconds === undefined ? Infinity : Date.now() + Number(args.seconds) * 1000

let stopping = false
let wake = () => {}
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    stopping = true
    wake()
  })
}

/** Sleeps `ms`, or less when a signal asks the probe to stop. */
function pause(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    wake = () => {
      clearTimeout(timer)
      resolve()
    }
  })
}

/**
 * Reads every file of one version of the Secret. The kubelet swaps the `..data` symlink to a new
 * directory atomically; resolving it once and reading from the resolved directory means all
 * files come from the same version even if a swap happens meanwhile. A plain directory (no
 * `..data`) is read as it is.
 */
function readCredential(dir) {
  let version = dir
  try {
    version = fs.realpathSync(path.join(dir, '..data'))
  } catch {
    // Not a Secret volume layout: read the files directly.
  }
  const values = {}
  for (const name of [...FILES, 'DFNS_ORG_ID']) {
    try {
      values[name] = fs.readFileSync(path.join(version, name), 'utf8')
    } catch (error) {
      if (name !== 'DFNS_ORG_ID') {
        throw new Error(`cannot read ${name}: ${error.code ?? 'unreadable'}`)
      }
    }
  }
  return values
}

/** The identity a token belongs to, from its claims (the SDK decodes them the same way). */
function identityOf(token) {
  const payload = token.split('.')[1]
  if (!payload) throw new Error('DFNS_AUTH_TOKEN is not a JWT')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))[CLAIMS] ?? {}
  if (claims.tokenKind === 'ServiceAccount' && claims.userId) {
    return { kind: 'ServiceAccount', id: claims.userId }
  }
  if (claims.tokenKind === 'Pat' && claims.tokenId) {
    return { kind: 'Pat', id: claims.tokenId }
  }
  throw new Error(`DFNS_AUTH_TOKEN is neither a service account's nor a PAT's (tokenKind ${claims.tokenKind})`)
}

function withTimeout(promise) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Error text with every credential value of the round removed, whatever the error carried. */
function redacted(error, secrets) {
  let text = error instanceof Error ? error.message : String(error)
  for (const secret of secrets) {
    for (const part of [secret, ...secret.split('\n')]) {
      const trimmed = part.trim()
      if (trimmed.length >= 8 && !trimmed.startsWith('-----')) text = text.split(trimmed).join('[redacted]')
    }
  }
  return text.slice(0, 500)
}

/** The HTTP status of a failed call; null when none came back (the SDK uses -1 for its own errors). */
function httpStatusOf(error) {
  return error instanceof DfnsError && error.httpStatus > 0 ? error.httpStatus : null
}

let round = 0
function record(call, ok, status, error) {
  const line = { t: new Date().toISOString(), round, call, ok, status, error }
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

/** Name of each identity as last read: the sign call writes it back unchanged. */
const knownNames = new Map()

async function runRound(dir) {
  round += 1
  let credential
  let secrets = []
  try {
    credential = readCredential(dir)
    secrets = [credential.DFNS_AUTH_TOKEN, credential.DFNS_PRIVATE_KEY].filter(Boolean)
  } catch (error) {
    const text = redacted(error, secrets)
    record('read', false, null, text)
    record('sign', false, null, text)
    return
  }
  let client
  let identity
  try {
    identity = identityOf(credential.DFNS_AUTH_TOKEN.trim())
    const signer = new AsymmetricKeySigner({
      credId: credential.DFNS_CRED_ID.trim(),
      privateKey: credential.DFNS_PRIVATE_KEY,
    })
    client = new DfnsApiClient({
      baseUrl: credential.DFNS_API_URL.trim(),
      orgId: credential.DFNS_ORG_ID?.trim() || undefined,
      authToken: credential.DFNS_AUTH_TOKEN.trim(),
      signer,
    })
  } catch (error) {
    const text = redacted(error, secrets)
    record('read', false, null, text)
    record('sign', false, null, text)
    return
  }

  const key = `${identity.kind}/${identity.id}`
  try {
    const name =
      identity.kind === 'ServiceAccount'
        ? (await withTimeout(client.auth.getServiceAccount({ serviceAccountId: identity.id }))).userInfo.name
        : (await withTimeout(client.auth.getPersonalAccessToken({ tokenId: identity.id }))).name
    knownNames.set(key, name)
    record('read', true, 200, '')
  } catch (error) {
    record('read', false, httpStatusOf(error), redacted(error, secrets))
  }

  const name = knownNames.get(key)
  if (name === undefined) {
    record('sign', false, null, `no name of ${key} known yet (its read never succeeded)`)
    return
  }
  try {
    if (identity.kind === 'ServiceAccount') {
      await withTimeout(client.auth.updateServiceAccount({ serviceAccountId: identity.id, body: { name } }))
    } else {
      await withTimeout(client.auth.updatePersonalAccessToken({ tokenId: identity.id, body: { name } }))
    }
    record('sign', true, 200, '')
  } catch (error) {
    record('sign', false, httpStatusOf(error), redacted(error, secrets))
  }
}

while (!stopping && Date.now() < endAt) {
  const started = Date.now()
  await runRound(args.dir)
  if (stopping) break
  await pause(Math.max(0, Math.min(intervalMs - (Date.now() - started), endAt - Date.now())))
}
