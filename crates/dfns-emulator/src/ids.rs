//! Dfns-shaped identifiers such as `us-6b58p-r53sr-rlrd3l5cj3uc4ome`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_chars(n: usize) -> String {
    (0..n)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `<prefix>-xxxxx-xxxxx-xxxxxxxxxxxxxxxx` (5, 5 and 16 lowercase alphanumerics).
pub(crate) fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}-{}",
        random_chars(5),
        random_chars(5),
        random_chars(16)
    )
}

/// A base64url credential id, as Dfns hands out for Key credentials it creates.
pub(crate) fn new_cred_id() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A base64url challenge of 32 random bytes.
pub(crate) fn new_challenge() -> String {
    new_cred_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_dfns_pattern() {
        let id = new_id("us");
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "us");
        assert_eq!((parts[1].len(), parts[2].len(), parts[3].len()), (5, 5, 16));
        assert!(
            id[3..]
                .chars()
                .all(|c| c == '-' || c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn ids_are_unique() {
        assert_ne!(new_id("to"), new_id("to"));
        assert_ne!(new_cred_id(), new_cred_id());
    }
}
