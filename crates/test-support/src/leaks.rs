//! The one leak check every e2e test runs: the secrets a test knows of (every access token the
//! emulator issued, login session tokens included, and every value of every Secret in the test's
//! namespace) must not appear, in any form a program could print them in, in the operators'
//! trace-level logs, the resources' statuses, the Events, or the metrics text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A secret value and the forms it could be printed in.
pub struct Needle {
    /// What the secret is, for the failure message (never the value itself).
    pub what: String,
    forms: Vec<(String, String)>,
}

impl Needle {
    /// `value` as text, as standard base64 (a Secret serialized to JSON), as a run of its bytes
    /// printed with `{:?}` (a `Vec<u8>` or `ByteString`), and for a PEM its body lines and the
    /// DER's bytes (`{:?}` and hex).
    pub fn new(what: impl Into<String>, value: &str) -> Self {
        let mut forms = vec![
            ("text".to_owned(), value.to_owned()),
            ("base64".to_owned(), STANDARD.encode(value)),
            (
                "bytes {:?}".to_owned(),
                debug_bytes(middle(value.as_bytes(), 12)),
            ),
        ];
        if value.contains("-----BEGIN") {
            let body: String = value.lines().filter(|l| !l.starts_with("-----")).collect();
            for line in value
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 32)
            {
                forms.push(("PEM line".to_owned(), line.to_owned()));
            }
            if let Ok(der) = STANDARD.decode(&body) {
                let window = middle(&der, 12);
                forms.push(("DER bytes {:?}".to_owned(), debug_bytes(window)));
                forms.push(("DER hex".to_owned(), hex::encode(window)));
            }
        }
        if let Some(signature) = value
            .rsplit('.')
            .next()
            .filter(|_| value.starts_with("eyJ"))
        {
            forms.push(("JWT signature".to_owned(), signature.to_owned()));
        }
        Self {
            what: what.into(),
            forms,
        }
    }

    /// Binary key material (the operator's seal key): its bytes as standard base64, hex and a
    /// run printed with `{:?}`.
    pub fn from_bytes(what: impl Into<String>, value: &[u8]) -> Self {
        let window = middle(value, 12);
        Self {
            what: what.into(),
            forms: vec![
                ("base64".to_owned(), STANDARD.encode(value)),
                ("hex".to_owned(), hex::encode(window)),
                ("bytes {:?}".to_owned(), debug_bytes(window)),
            ],
        }
    }

    /// The form of this secret found in `haystack`, if any.
    pub fn found_in(&self, haystack: &str) -> Option<&str> {
        self.forms
            .iter()
            .find(|(_, form)| form.len() >= 8 && haystack.contains(form.as_str()))
            .map(|(name, _)| name.as_str())
    }
}

/// A named text searched for secrets.
pub struct Haystack {
    pub what: String,
    pub text: String,
}

/// Every (secret, place, form) found: empty when nothing leaked.
pub fn find(needles: &[Needle], haystacks: &[Haystack]) -> Vec<String> {
    let mut found = Vec::new();
    for haystack in haystacks {
        for needle in needles {
            if let Some(form) = needle.found_in(&haystack.text) {
                found.push(format!("{} in {} (as {form})", needle.what, haystack.what));
            }
        }
        // Secrets the test does not know of still have recognizable shapes.
        if haystack.text.contains("PRIVATE KEY-----") {
            found.push(format!("a PEM private key in {}", haystack.what));
        }
    }
    found
}

fn middle(bytes: &[u8], len: usize) -> &[u8] {
    if bytes.len() <= len {
        return bytes;
    }
    let start = (bytes.len() - len) / 2;
    &bytes[start..start + len]
}

/// Bytes as `{:?}` prints them inside a slice: `48, 129, 135`.
fn debug_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgcHZ0kBMW7sI1J3aE\nmS6nLPbyAqP2Lh3bXoYGQ8hxBVGhRANCAAQhYk1UHs6FmEC6kvErV0RDIzZjEzA5\n-----END PRIVATE KEY-----\n";

    #[test]
    fn every_printable_form_of_a_secret_is_found() {
        let key = Needle::new("key", PEM);
        let token = Needle::new(
            "token",
            "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXBhcnQ",
        );
        let der = STANDARD
            .decode(
                PEM.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        for (needle, haystack) in [
            (&key, PEM.replace('\n', "\\n")),
            (&key, format!("{:?}", PEM.as_bytes())),
            (&key, format!("{der:?}")),
            (&key, hex::encode(&der)),
            (&key, STANDARD.encode(PEM)),
            (
                &token,
                "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXBhcnQ".into(),
            ),
            (
                &token,
                format!(
                    "{:?}",
                    "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXBhcnQ".as_bytes()
                ),
            ),
            (&token, "sig=c2lnbmF0dXJlLXBhcnQ".into()),
        ] {
            assert!(
                needle.found_in(&haystack).is_some(),
                "{} not found in {haystack}",
                needle.what
            );
        }
        assert!(key.found_in("nothing secret here").is_none());
        assert!(token.found_in("eyJ but another token").is_none());
    }

    #[test]
    fn binary_key_material_is_found_as_base64_hex_and_bytes() {
        let key: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(37).wrapping_add(11))
            .collect();
        let needle = Needle::from_bytes("a seal key", &key);
        for haystack in [
            format!("data: {{\"seal-key\": \"{}\"}}", STANDARD.encode(&key)),
            format!("key={}", hex::encode(&key)),
            format!("{:?}", key),
        ] {
            assert!(needle.found_in(&haystack).is_some(), "{haystack}");
        }
        assert!(needle.found_in("nothing secret here").is_none());
    }

    #[test]
    fn a_pem_private_key_is_found_by_shape_alone() {
        let found = find(
            &[],
            &[Haystack {
                what: "logs".into(),
                text: PEM.into(),
            }],
        );
        assert_eq!(found, ["a PEM private key in logs"]);
    }
}
