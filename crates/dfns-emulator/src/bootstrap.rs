//! What a client needs to start using the emulator: the bootstrap file's content.

use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Written to `--bootstrap-file` once the emulator listens.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    pub api_url: String,
    pub org_id: String,
    pub admin: BootstrapAdmin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

/// An organization user with `DfnsFullAdminAccess` and a P-256 Key credential.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapAdmin {
    pub user_id: String,
    pub username: String,
    pub cred_id: String,
    /// PKCS#8 PEM.
    pub private_key: String,
}

// Debug by hand: the private key must never reach logs.
impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("api_url", &self.api_url)
            .field("org_id", &self.org_id)
            .field("admin", &self.admin)
            .field("ca_cert", &self.ca_cert.as_ref().map(|_| "<PEM>"))
            .finish()
    }
}

impl std::fmt::Debug for BootstrapAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapAdmin")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("cred_id", &self.cred_id)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl Bootstrap {
    /// Writes the file atomically (temporary file in the same directory, then rename), readable
    /// by the owner only, so readers never see half a file.
    pub fn write_atomically(&self, path: &Path) -> std::io::Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("bootstrap.json");
        let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(&json)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bootstrap {
        Bootstrap {
            api_url: "http://127.0.0.1:1".into(),
            org_id: "or-1".into(),
            admin: BootstrapAdmin {
                user_id: "us-1".into(),
                username: "admin".into(),
                cred_id: "Y3I".into(),
                private_key: "-----BEGIN PRIVATE KEY-----secret".into(),
            },
            ca_cert: None,
        }
    }

    #[test]
    fn debug_output_hides_the_private_key() {
        assert!(!format!("{:?}", sample()).contains("secret"));
    }

    #[test]
    fn file_is_written_whole_with_camel_case_fields_and_no_ca_when_plain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap.json");
        sample().write_atomically(&path).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["apiUrl"], "http://127.0.0.1:1");
        assert_eq!(
            v["admin"]["privateKey"],
            "-----BEGIN PRIVATE KEY-----secret"
        );
        assert!(v.get("caCert").is_none());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
