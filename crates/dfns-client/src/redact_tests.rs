use super::*;
use crate::SecretString;

const JWT: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

#[test]
fn jwts_pem_blocks_and_bearer_values_between_spaces_are_redacted() {
    let text = format!(
        "token {JWT}, key -----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY----- and Bearer opaque123 done"
    );
    assert_eq!(
        scrub(&text),
        "token [redacted], key [redacted] and Bearer [redacted] done"
    );
}

#[test]
fn a_jwt_glued_to_other_text_is_redacted() {
    assert_eq!(scrub(&format!("token={JWT}&x=1")), "token=[redacted]&x=1");
    assert_eq!(
        scrub(&format!(r#"{{"accessToken":"{JWT}"}}"#)),
        r#"{"accessToken":"[redacted]"}"#
    );
    assert_eq!(scrub(&format!("({JWT})")), "([redacted])");
}

#[test]
fn an_unsigned_jwt_is_redacted_but_other_eyj_words_are_kept() {
    assert_eq!(
        scrub("alg none: eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. ok"),
        "alg none: [redacted] ok"
    );
    assert_eq!(scrub("eyJust a word. eyJ.x"), "eyJust a word. eyJ.x");
    assert_eq!(scrub("keyJar.v1.two"), "keyJar.v1.two");
}

#[test]
fn a_pem_block_glued_to_json_or_with_escaped_newlines_is_redacted() {
    let escaped = r#"{"key":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----","id":"k1"}"#;
    assert_eq!(scrub(escaped), r#"{"key":"[redacted]","id":"k1"}"#);
    let real = "pem:-----BEGIN PUBLIC KEY-----\r\nMFkwEwYH\r\n-----END PUBLIC KEY-----.";
    assert_eq!(scrub(real), "pem:[redacted].");
}

#[test]
fn an_unclosed_pem_block_is_redacted_to_the_end() {
    assert_eq!(
        scrub("bad key -----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG"),
        "bad key [redacted]"
    );
}

#[test]
fn a_value_that_was_a_secret_string_is_redacted_wherever_it_sits() {
    let opaque = "opaqueSecret-7f3a9c1e5b2d4f6a8c0e1f2a3b4c5d6e";
    let _secret = SecretString::new(opaque);
    assert_eq!(scrub(&format!("x={opaque}&y")), "x=[redacted]&y");
    assert_eq!(
        scrub(&format!("glued{opaque}glued")),
        "glued[redacted]glued"
    );
    assert_eq!(
        scrub(&format!(r#"{{"v":"{opaque}"}} twice {opaque}"#)),
        r#"{"v":"[redacted]"} twice [redacted]"#
    );
}

#[test]
fn a_registered_secret_cut_short_is_still_redacted() {
    let opaque = "anotherSecretValue-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ";
    let _secret: SecretString = opaque.into();
    let tail = &opaque[30..];
    let scrubbed = scrub(&format!("truncated: {tail}"));
    assert!(!scrubbed.contains(&tail[..24]), "{scrubbed}");
    let head = &opaque[..40];
    let scrubbed = scrub(&format!("{head}… and more"));
    assert!(!scrubbed.contains(&head[..24]), "{scrubbed}");
}

#[test]
fn each_line_of_a_registered_pem_key_is_redacted_but_its_armour_stands_for_no_secret() {
    let key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2f8e\nq1w2e3r4t5y6u7i8o9p0AaSsDdFfGgHhJjKkLlZzXxCcVvBbNnMm\n-----END PRIVATE KEY-----\n";
    let _secret = SecretString::new(key);
    assert_eq!(
        scrub("line: q1w2e3r4t5y6u7i8o9p0AaSsDdFfGgHhJjKkLlZzXxCcVvBbNnMm;"),
        "line: [redacted];"
    );
    assert_eq!(
        scrub("no key here: -----BEGIN PRIVATE KEY-----"),
        "no key here: [redacted]"
    );
    assert_eq!(
        scrub("-----END PRIVATE KEY----- and after it a long ordinary sentence"),
        "-----END PRIVATE KEY----- and after it a long ordinary sentence"
    );
}

#[test]
fn deserialized_secrets_are_registered_too() {
    #[derive(serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        token: SecretString,
    }
    let opaque = "fromJsonSecret_zyxwvutsrqponmlkjihgfedcba_987654";
    let _body: Body = serde_json::from_str(&format!(r#"{{"token":"{opaque}"}}"#)).unwrap();
    assert_eq!(scrub(&format!("echo:{opaque}")), "echo:[redacted]");
}

#[test]
fn short_secrets_and_ordinary_messages_are_left_alone() {
    let _short = SecretString::new("short");
    let message =
        "CustomerEmployee us-abc is not authorized to perform operation (Auth:Pats:Create) short";
    assert_eq!(scrub(message), message);
}

#[test]
fn the_registry_stays_bounded_and_keeps_the_newest_secrets() {
    let mut registry = Registry::new();
    let secret = |index: usize| format!("bounded-registry-test-secret-{index:012}");
    let count = (GENERATION_WINDOWS / WINDOWS_PER_PIECE) * 3;
    for index in 0..count {
        registry.insert(&secret(index));
    }
    assert!(registry.current.len() <= GENERATION_WINDOWS);
    assert!(registry.previous.len() <= GENERATION_WINDOWS);
    let newest = secret(count - 1);
    assert_eq!(
        registry.spans(&newest),
        vec![(0, newest.len()); WINDOWS_PER_PIECE]
    );
}

#[test]
fn multibyte_text_around_secrets_stays_valid() {
    let scrubbed = scrub(&format!("é{JWT}ü -----BEGIN X-----ß-----END X-----日本"));
    assert_eq!(scrubbed, "é[redacted]ü [redacted]日本");
}

#[test]
fn long_messages_are_bounded() {
    assert_eq!(
        scrub(&"x".repeat(2000)).chars().count(),
        MAX_MESSAGE_CHARS + 1
    );
}
