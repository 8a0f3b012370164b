// A workload as a user writes it: the official Dfns SDK configured from the environment the
// operator's Secret provides through envFrom (DFNS_API_URL, DFNS_ORG_ID, DFNS_AUTH_TOKEN,
// DFNS_CRED_ID, DFNS_PRIVATE_KEY). It makes one authenticated read and one signed user action,
// logs the outcome of each (never a secret), then stays up like a service would.
import { DfnsApiClient } from '@dfns/sdk'
import { AsymmetricKeySigner } from '@dfns/sdk-keysigner'

const env = process.env
const signer = new AsymmetricKeySigner({ credId: env.DFNS_CRED_ID, privateKey: env.DFNS_PRIVATE_KEY })
const client = new DfnsApiClient({ baseUrl: env.DFNS_API_URL, orgId: env.DFNS_ORG_ID, authToken: env.DFNS_AUTH_TOKEN, signer })

try {
  const accounts = await client.auth.listServiceAccounts()
  console.log(`workload: authenticated read ok: ${accounts.items.length} service accounts listed`)
  const name = env.WORKLOAD_PROOF_NAME ?? 'workload-proof'
  const permission = await client.permissions.createPermission({ body: { name, operations: ['Auth:ServiceAccounts:Read'] } })
  console.log(`workload: signed user action ok: created permission ${permission.name} (${permission.id})`)
} catch (error) {
  console.log(`workload: failed: ${error?.constructor?.name} ${error?.httpStatus ?? ''} ${error?.message}`)
  process.exitCode = 1
}
if (process.exitCode !== 1) setInterval(() => {}, 1 << 30)
