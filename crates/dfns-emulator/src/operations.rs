//! Permission operation names the emulator knows (current Dfns names for the paths it serves).

pub(crate) const SA_CREATE: &str = "Auth:ServiceAccounts:Create";
pub(crate) const SA_READ: &str = "Auth:ServiceAccounts:Read";
pub(crate) const SA_UPDATE: &str = "Auth:ServiceAccounts:Update";
pub(crate) const SA_ACTIVATE: &str = "Auth:ServiceAccounts:Activate";
pub(crate) const SA_DEACTIVATE: &str = "Auth:ServiceAccounts:Deactivate";
pub(crate) const SA_DELETE: &str = "Auth:ServiceAccounts:Delete";
pub(crate) const PATS_CREATE: &str = "Auth:Pats:Create";
pub(crate) const USERS_ACTIVATE: &str = "Auth:Users:Activate";
pub(crate) const USERS_DEACTIVATE: &str = "Auth:Users:Deactivate";
pub(crate) const PERMISSIONS_CREATE: &str = "Permissions:Create";
pub(crate) const PERMISSIONS_READ: &str = "Permissions:Read";
pub(crate) const PERMISSIONS_ASSIGN: &str = "Permissions:Assign";
pub(crate) const PERMISSIONS_REVOKE: &str = "Permissions:Revoke";
pub(crate) const PERMISSIONS_ASSIGNMENTS_READ: &str = "Permissions:Assignments:Read";
pub(crate) const POLICIES_APPROVALS_READ: &str = "Policies:Approvals:Read";

/// Every operation name accepted in `POST /permissions`; `DfnsFullAdminAccess` holds all.
pub(crate) const ALL: &[&str] = &[
    SA_CREATE,
    SA_READ,
    SA_UPDATE,
    SA_ACTIVATE,
    SA_DEACTIVATE,
    SA_DELETE,
    PATS_CREATE,
    "Auth:Users:Create",
    "Auth:Users:Read",
    "Auth:Users:Update",
    USERS_ACTIVATE,
    USERS_DEACTIVATE,
    "Auth:Users:Delete",
    PERMISSIONS_CREATE,
    PERMISSIONS_READ,
    "Permissions:Update",
    PERMISSIONS_ASSIGN,
    PERMISSIONS_REVOKE,
    "Permissions:Delete",
    PERMISSIONS_ASSIGNMENTS_READ,
    POLICIES_APPROVALS_READ,
    "Wallets:Create",
    "Wallets:Read",
    "Keys:Create",
    "Keys:Read",
];

pub(crate) fn is_known(op: &str) -> bool {
    ALL.contains(&op)
}
