//! Service accounts and personal access tokens as one view (Dfns calls both "identities", next to
//! users), so one reconciler drives both.
//!
//! The two kinds differ only in endpoints, id fields and response shape; [`IdentityKind`] holds
//! those differences and [`Identity`] is what callers see either way.
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use jiff::Timestamp;

use super::keys::public_key_sha256_from_pem;
use super::sensitive::SecretString;
use super::types::PermissionAssignmentRef;
use super::types::pat::PersonalAccessToken;
use super::types::service_account::ServiceAccount;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    ServiceAccount,
    PersonalAccessToken,
}

impl IdentityKind {
    /// The collection path: list with GET, create with POST.
    pub(crate) fn collection_path(self) -> &'static str {
        match self {
            Self::ServiceAccount => "/auth/service-accounts",
            Self::PersonalAccessToken => "/auth/pats",
        }
    }

    /// The path of one object, by its [`Identity::id`].
    pub(crate) fn item_path(self, id: &str) -> String {
        format!("{}/{}", self.collection_path(), path_segment(id))
    }

    /// What Dfns calls it, for messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Self::ServiceAccount => "service account",
            Self::PersonalAccessToken => "personal access token",
        }
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// Percent-encodes anything outside the characters Dfns ids use, so an id cannot change the path.
/// An id that would be empty or a dot segment (`.`, `..`: URL parsing resolves them, encoded or
/// not) becomes `invalid-id`, which names nothing in Dfns: an id taken from a status or a
/// response can never move a request to another endpoint.
pub(crate) fn path_segment(id: &str) -> String {
    if id.bytes().all(|b| b == b'.') {
        return "invalid-id".to_owned();
    }
    id.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A service account or PAT as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub kind: IdentityKind,
    /// The id used in paths and as `identityId` for permission assignments: the service
    /// account's user id (`us-...`) or the PAT's token id (`to-...`).
    pub id: String,
    /// The token id (`to-...`); for a PAT the same as `id`.
    pub token_id: Option<String>,
    /// The Key credential's `credId` (what `DFNS_CRED_ID` holds).
    pub cred_id: Option<String>,
    pub is_active: bool,
    pub name: Option<String>,
    pub external_id: Option<String>,
    /// As Dfns returns it: PEM, `SHA256:` fingerprint, or empty.
    pub public_key: Option<String>,
    /// For a PAT, the user it belongs to.
    pub linked_user_id: Option<String>,
    pub org_id: Option<String>,
    pub date_created: Option<Timestamp>,
    pub permission_assignments: Vec<PermissionAssignmentRef>,
}

impl Identity {
    /// Hex SHA-256 of the registered key's SPKI DER: the fingerprint the operator records. Dfns
    /// returns the key as PEM, or in some revisions as an SSH-style `SHA256:<base64>` fingerprint;
    /// both give the same answer, so PEM wrapping never matters.
    pub fn public_key_sha256(&self) -> Option<String> {
        let key = self.public_key.as_deref()?;
        if let Some(fingerprint) = key.strip_prefix("SHA256:") {
            let digest = STANDARD_NO_PAD
                .decode(fingerprint.trim_end_matches('='))
                .ok()?;
            return Some(hex::encode(digest));
        }
        public_key_sha256_from_pem(key).ok()
    }

    /// The same identity with a PEM key replaced by its `SHA256:` fingerprint, the form some Dfns
    /// revisions return: [`Self::public_key_sha256`] answers the same, and a cached listing keeps
    /// 50 bytes per key instead of about 180. A key that cannot be read is kept as it is.
    pub fn fingerprinted(mut self) -> Self {
        if let Some(pem) = self.public_key.as_deref()
            && !pem.starts_with("SHA256:")
            && let Ok(hex_digest) = public_key_sha256_from_pem(pem)
            && let Ok(digest) = hex::decode(hex_digest)
        {
            self.public_key = Some(format!("SHA256:{}", STANDARD_NO_PAD.encode(digest)));
        }
        self
    }

    /// The assignment of `permission_id`, when this identity has it.
    pub fn assignment_of(&self, permission_id: &str) -> Option<&PermissionAssignmentRef> {
        self.permission_assignments
            .iter()
            .find(|assignment| assignment.permission_id == permission_id)
    }
}

impl From<ServiceAccount> for Identity {
    fn from(account: ServiceAccount) -> Self {
        let user = account.user_info;
        // A service account has one token; take the active one if several ever appear.
        let token = account
            .access_tokens
            .iter()
            .find(|token| token.is_active)
            .or_else(|| account.access_tokens.first());
        let mut assignments = user.permission_assignments;
        if assignments.is_empty()
            && let Some(token) = token
        {
            assignments = token.permission_assignments.clone();
        }
        Self {
            kind: IdentityKind::ServiceAccount,
            token_id: token.map(|token| token.token_id.clone()),
            cred_id: token.and_then(|token| non_empty(token.cred_id.clone())),
            is_active: user.is_active,
            name: user
                .name
                .or(user.username)
                .or_else(|| token.and_then(|token| token.name.clone())),
            external_id: user
                .external_id
                .or_else(|| token.and_then(|token| token.external_id.clone())),
            public_key: token.and_then(|token| non_empty(token.public_key.clone())),
            linked_user_id: Some(user.user_id.clone()),
            org_id: user
                .org_id
                .or_else(|| token.and_then(|token| token.org_id.clone())),
            date_created: token.and_then(|token| parse_date(token.date_created.as_deref())),
            permission_assignments: assignments,
            id: user.user_id,
        }
    }
}

impl From<PersonalAccessToken> for Identity {
    fn from(token: PersonalAccessToken) -> Self {
        Self {
            kind: IdentityKind::PersonalAccessToken,
            id: token.token_id.clone(),
            token_id: Some(token.token_id),
            cred_id: non_empty(token.cred_id),
            is_active: token.is_active,
            name: token.name,
            external_id: token.external_id,
            public_key: non_empty(token.public_key),
            linked_user_id: token.linked_user_id,
            org_id: token.org_id,
            date_created: parse_date(token.date_created.as_deref()),
            permission_assignments: token.permission_assignments,
        }
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.trim().is_empty())
}

fn parse_date(text: Option<&str>) -> Option<Timestamp> {
    text.and_then(|text| text.parse::<Timestamp>().ok())
}

/// What to create; [`super::DfnsClient::create`] maps it onto the kind's request body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewIdentity {
    pub name: String,
    /// SPKI PEM of the key the operator generated.
    pub public_key_pem: String,
    pub permission_id: Option<String>,
    /// The operator puts the resource's UID here, to find the object again after a crash.
    pub external_id: Option<String>,
    pub days_valid: Option<u32>,
    /// PATs only.
    pub seconds_valid: Option<u64>,
}

/// The result of a create: the object, and its access token, shown this once only.
#[derive(Debug)]
pub struct CreatedIdentity {
    pub identity: Identity,
    pub access_token: SecretString,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_p256, public_key_der_from_pem};
    use serde_json::json;
    use sha2::{Digest, Sha256};

    fn service_account(public_key: &str) -> Identity {
        let account: ServiceAccount = serde_json::from_value(json!({
            "userInfo": {"userId": "us-1", "username": "u", "name": "robot", "orgId": "or-1", "isActive": true,
                         "externalId": "uid-1",
                         "permissionAssignments": [{"permissionId": "pm-1", "assignmentId": "as-1", "permissionName": "p"}]},
            "accessTokens": [{"tokenId": "to-1", "credId": "Y2k", "isActive": true, "publicKey": public_key,
                              "dateCreated": "2026-01-02T03:04:05.678Z"}]
        }))
        .unwrap();
        account.into()
    }

    #[test]
    fn a_fingerprinted_identity_keeps_its_key_fingerprint_in_a_shorter_form() {
        let pair = generate_p256().unwrap();
        let identity = service_account(&pair.public_key_pem);
        let fingerprinted = identity.clone().fingerprinted();
        assert!(
            fingerprinted
                .public_key
                .as_deref()
                .unwrap()
                .starts_with("SHA256:")
        );
        assert!(fingerprinted.public_key.as_ref().unwrap().len() < 60);
        assert_eq!(
            fingerprinted.public_key_sha256(),
            identity.public_key_sha256()
        );
        assert!(fingerprinted.public_key_sha256().is_some());
        // Already a fingerprint, or unreadable: unchanged.
        assert_eq!(fingerprinted.clone().fingerprinted(), fingerprinted);
        let unreadable = service_account("not a key");
        assert_eq!(unreadable.clone().fingerprinted(), unreadable);
    }

    #[test]
    fn service_account_maps_to_the_common_view() {
        let identity = service_account("PEM");
        assert_eq!(identity.kind, IdentityKind::ServiceAccount);
        assert_eq!(identity.id, "us-1");
        assert_eq!(identity.token_id.as_deref(), Some("to-1"));
        assert_eq!(identity.cred_id.as_deref(), Some("Y2k"));
        assert_eq!(identity.name.as_deref(), Some("robot"));
        assert_eq!(identity.external_id.as_deref(), Some("uid-1"));
        assert_eq!(identity.date_created.unwrap().as_second(), 1_767_323_045);
        assert_eq!(
            identity.assignment_of("pm-1").unwrap().assignment_id,
            "as-1"
        );
        assert!(identity.assignment_of("pm-2").is_none());
    }

    #[test]
    fn pat_maps_to_the_common_view_with_token_id_as_id() {
        let pat: PersonalAccessToken = serde_json::from_value(json!({
            "tokenId": "to-9", "credId": "", "isActive": false, "linkedUserId": "us-2", "name": "n", "externalId": "e"
        }))
        .unwrap();
        let identity = Identity::from(pat);
        assert_eq!(identity.id, "to-9");
        assert_eq!(identity.cred_id, None, "empty credId means unknown");
        assert_eq!(identity.linked_user_id.as_deref(), Some("us-2"));
        assert!(!identity.is_active);
    }

    #[test]
    fn kinds_know_their_paths() {
        assert_eq!(
            IdentityKind::ServiceAccount.item_path("us-1"),
            "/auth/service-accounts/us-1"
        );
        assert_eq!(
            IdentityKind::PersonalAccessToken.item_path("to-1"),
            "/auth/pats/to-1"
        );
        assert_eq!(
            IdentityKind::PersonalAccessToken.item_path("../x y"),
            "/auth/pats/..%2Fx%20y"
        );
        for dots in ["", ".", ".."] {
            assert_eq!(
                IdentityKind::PersonalAccessToken.item_path(dots),
                "/auth/pats/invalid-id"
            );
        }
    }

    #[test]
    fn the_key_fingerprint_is_the_same_from_pem_in_any_wrapping_or_from_an_ssh_fingerprint() {
        let pair = generate_p256().unwrap();
        let rewrapped = pair.public_key_pem.replace('\n', "\r\n");
        let ssh_style = format!(
            "SHA256:{}",
            STANDARD_NO_PAD.encode(Sha256::digest(
                public_key_der_from_pem(&pair.public_key_pem).unwrap()
            ))
        );
        let expected = Some(pair.public_key_sha256.clone());
        assert_eq!(
            service_account(&pair.public_key_pem).public_key_sha256(),
            expected
        );
        assert_eq!(service_account(&rewrapped).public_key_sha256(), expected);
        assert_eq!(service_account(&ssh_style).public_key_sha256(), expected);
        assert_eq!(service_account("").public_key_sha256(), None);
    }
}
