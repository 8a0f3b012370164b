//! The strict profile (the default): each place where the emulator follows the reference pages
//! rather than a kinder reading, and the switch that gives the other reading.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use dfns_emulator::{Faults, IdentityKeyRotation, Profile, PublicKeyForm};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::credentials::{key_credential_body, key_credential_challenge, rotation_allowed};
use crate::support::*;

#[tokio::test]
async fn list_credentials_is_refused_to_service_accounts_but_not_to_pats_or_users() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (_, sa) = create_service_account(&admin, "lister", &TestKey::p256(), json!({})).await;
    let (_, pat) = create_pat(&admin, "lister", &TestKey::p256(), json!({})).await;
    let msg = sa
        .get("/auth/credentials")
        .await
        .error(StatusCode::FORBIDDEN);
    assert!(msg.contains("List Credentials"), "{msg}");
    let own = pat.get("/auth/credentials").await.ok();
    assert_eq!(
        own["items"].as_array().unwrap().len(),
        1,
        "the PAT's own key"
    );
    admin.get("/auth/credentials").await.ok();

    emu.set_profile(Profile {
        service_accounts_list_credentials: true,
        ..Profile::strict()
    })
    .unwrap();
    let own = sa.get("/auth/credentials").await.ok();
    assert_eq!(own["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_credential_endpoint_refuses_service_accounts_and_pats_by_default() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa_body, sa) = create_service_account(&admin, "rot", &TestKey::p256(), json!({})).await;
    let (pat_body, pat) = create_pat(&admin, "rot", &TestKey::p256(), json!({})).await;
    let sa_cred = sa_body["userInfo"]["credentialUuid"].as_str().unwrap();
    let pat_cred = emu
        .state()
        .pats
        .iter()
        .find(|p| p.token_id == pat_body["tokenId"])
        .unwrap()
        .credential_uuid
        .clone();
    let before = emu.state().credentials;
    for (client, cred) in [(&sa, sa_cred), (&pat, pat_cred.as_str())] {
        let init = client
            .send(
                Method::POST,
                "/auth/credentials/init",
                &Body::Json(json!({ "kind": "Key" })),
                None,
            )
            .await;
        assert!(
            init.error(StatusCode::FORBIDDEN)
                .contains("Create Credential Challenge")
        );
        // Create with a challenge the admin may get: refused for who calls, not for the body.
        let challenge = key_credential_challenge(&admin).await;
        let body = key_credential_body(&challenge, &TestKey::p256(), "bmV3LWNyZWQ", false);
        let msg = client
            .post("/auth/credentials", body)
            .await
            .error(StatusCode::FORBIDDEN);
        assert!(msg.contains("Create Credential"), "{msg}");
        let uuid = json!({ "credentialUuid": cred });
        for path in ["/auth/credentials/deactivate", "/auth/credentials/activate"] {
            client
                .put(path, uuid.clone())
                .await
                .error(StatusCode::FORBIDDEN);
        }
        client
            .signed(
                Method::DELETE,
                &format!("/auth/credentials/{cred}"),
                Body::None,
            )
            .await
            .error(StatusCode::FORBIDDEN);
    }
    assert_eq!(emu.state().credentials, before, "nothing changed");

    // The rotation guide's reading lets them manage their own credentials.
    emu.set_profile(rotation_allowed()).unwrap();
    sa.put(
        "/auth/credentials/activate",
        json!({ "credentialUuid": sa_cred }),
    )
    .await
    .ok();
}

#[tokio::test]
async fn deleted_credential_no_longer_signs_leaves_the_list_and_its_cred_id_stays_taken() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let new_key = TestKey::ed25519();
    let init = key_credential_challenge(&admin).await;
    let created = admin
        .post(
            "/auth/credentials",
            key_credential_body(&init, &new_key, "c2Vjb25kLWtleQ", false),
        )
        .await
        .ok();
    let uuid = created["credentialUuid"].as_str().unwrap();
    let second = admin.with(&admin.token, "c2Vjb25kLWtleQ", &new_key);
    second.get("/auth/credentials").await.ok();
    let other_sa = create_service_account(&admin, "x", &TestKey::p256(), json!({})).await;
    let other_cred = other_sa.0["userInfo"]["credentialUuid"].as_str().unwrap();
    admin
        .signed(
            Method::DELETE,
            &format!("/auth/credentials/{other_cred}"),
            Body::None,
        )
        .await
        .error(StatusCode::NOT_FOUND);

    let reply = admin
        .signed(
            Method::DELETE,
            &format!("/auth/credentials/{uuid}"),
            Body::None,
        )
        .await
        .ok();
    assert_eq!(reply, json!({}));
    let list = admin.get("/auth/credentials").await.ok();
    assert!(!list.to_string().contains(uuid), "{list}");
    second
        .sign_action(&Method::PUT, "/x", "", &Default::default())
        .await
        .error(StatusCode::UNAUTHORIZED);
    let init = key_credential_challenge(&admin).await;
    admin
        .post(
            "/auth/credentials",
            key_credential_body(&init, &new_key, "c2Vjb25kLWtleQ", false),
        )
        .await
        .error(StatusCode::CONFLICT);
}

/// Every reply of the service-account and PAT endpoints for one of each, created with an
/// `externalId`: create, get, list, update, deactivate, activate.
async fn every_identity_reply(admin: &Client) -> Vec<Value> {
    let extra = json!({ "externalId": "k8s-uid-1" });
    let (sa, _) = create_service_account(admin, "ext", &TestKey::p256(), extra.clone()).await;
    let (pat, _) = create_pat(admin, "ext", &TestKey::p256(), extra).await;
    let sa_path = format!(
        "/auth/service-accounts/{}",
        sa["userInfo"]["userId"].as_str().unwrap()
    );
    let pat_path = format!("/auth/pats/{}", pat["tokenId"].as_str().unwrap());
    let mut replies = vec![sa, pat];
    for (path, list) in [
        (&sa_path, "/auth/service-accounts"),
        (&pat_path, "/auth/pats"),
    ] {
        replies.push(admin.get(path).await.ok());
        replies.push(admin.get(list).await.ok());
        replies.push(
            admin
                .put(path, json!({ "externalId": "k8s-uid-2" }))
                .await
                .ok(),
        );
        replies.push(
            admin
                .put(&format!("{path}/deactivate"), json!({}))
                .await
                .ok(),
        );
        replies.push(admin.put(&format!("{path}/activate"), json!({})).await.ok());
    }
    replies
}

#[tokio::test]
async fn no_service_account_or_pat_reply_carries_external_id_but_the_state_keeps_it() {
    let emu = start().await;
    let admin = admin(&emu).await;
    for reply in every_identity_reply(&admin).await {
        assert!(!reply.to_string().contains("externalId"), "{reply}");
    }
    let state = emu.state();
    assert_eq!(
        state.service_accounts[0].external_id.as_deref(),
        Some("k8s-uid-2")
    );
    assert_eq!(state.pats[0].external_id.as_deref(), Some("k8s-uid-2"));

    let lenient = start_profile(Profile::lenient()).await;
    let admin = crate::support::admin(&lenient).await;
    let replies = every_identity_reply(&admin).await;
    assert!(replies.iter().all(|r| r.to_string().contains("externalId")));
}

fn is_dfns_id(id: &str, prefix: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 4 && parts[0] == prefix && parts[1].len() == 5 && parts[2].len() == 5
}

#[tokio::test]
async fn linked_app_id_is_one_ap_id_never_empty() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, _) = create_service_account(&admin, "app", &TestKey::p256(), json!({})).await;
    let (pat, _) = create_pat(&admin, "app", &TestKey::p256(), json!({})).await;
    let sa_app = sa["accessTokens"][0]["linkedAppId"].as_str().unwrap();
    assert!(is_dfns_id(sa_app, "ap"), "{sa_app}");
    assert_eq!(pat["linkedAppId"], sa_app, "one organization, one app id");

    emu.set_profile(Profile::lenient()).unwrap();
    let (pat, _) = create_pat(&admin, "app2", &TestKey::p256(), json!({})).await;
    assert_eq!(pat["linkedAppId"], "");
}

#[tokio::test]
async fn a_token_created_without_validity_has_no_exp_and_keeps_working() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (sa, sa_client) =
        create_service_account(&admin, "forever", &TestKey::p256(), json!({})).await;
    let (pat, pat_client) = create_pat(&admin, "forever", &TestKey::p256(), json!({})).await;
    for token in [&sa["accessTokens"][0]["accessToken"], &pat["accessToken"]] {
        let claims = jwt_claims(token.as_str().unwrap());
        assert!(claims.get("exp").is_none(), "{claims}");
        assert!(claims["iat"].is_i64());
    }
    sa_client.get("/auth/pats").await.ok();
    pat_client.get("/auth/pats").await.ok();
    assert_eq!(emu.state().service_accounts[0].expires_at, None);
    assert_eq!(emu.state().pats[0].expires_at, None);
    // A given validity still sets exp.
    let (pat, _) = create_pat(&admin, "week", &TestKey::p256(), json!({ "daysValid": 7 })).await;
    let claims = jwt_claims(pat["accessToken"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        7 * 86_400
    );

    emu.set_profile(Profile {
        default_days_valid: Some(3),
        ..Profile::strict()
    })
    .unwrap();
    let (pat, _) = create_pat(&admin, "default", &TestKey::p256(), json!({})).await;
    let claims = jwt_claims(pat["accessToken"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3 * 86_400
    );
}

#[tokio::test]
async fn the_lenient_profile_sends_retry_after_on_every_429() {
    let emu = start_profile(Profile::lenient()).await;
    let admin = admin(&emu).await;
    emu.set_faults(Faults {
        rate_limit_per_minute: Some(2),
        ..Faults::default()
    });
    admin.get("/auth/pats").await.ok();
    admin.get("/auth/pats").await.ok();
    let reply = admin.get("/auth/pats").await;
    assert!(reply.headers.get("retry-after").is_some());
    reply.error(StatusCode::TOO_MANY_REQUESTS);
}

/// The `publicKey` of every service-account and PAT reply (create and get).
async fn public_keys(admin: &Client, key: &TestKey) -> Vec<String> {
    let (sa, _) = create_service_account(admin, "pk", key, json!({})).await;
    let (pat, _) = create_pat(admin, "pk", key, json!({})).await;
    let sa_id = sa["userInfo"]["userId"].as_str().unwrap();
    let got_sa = admin
        .get(&format!("/auth/service-accounts/{sa_id}"))
        .await
        .ok();
    let got_pat = admin
        .get(&format!("/auth/pats/{}", pat["tokenId"].as_str().unwrap()))
        .await
        .ok();
    [
        &sa["accessTokens"][0]["publicKey"],
        &got_sa["accessTokens"][0]["publicKey"],
        &pat["publicKey"],
        &got_pat["publicKey"],
    ]
    .into_iter()
    .map(|v| v.as_str().expect("publicKey is a string").to_owned())
    .collect()
}

#[tokio::test]
async fn public_key_is_a_sha256_spki_fingerprint_by_default_and_pem_or_empty_on_request() {
    let emu = start().await;
    let admin = admin(&emu).await;
    for key in [TestKey::p256(), TestKey::ed25519(), TestKey::rsa()] {
        let expected = format!(
            "SHA256:{}",
            STANDARD_NO_PAD.encode(Sha256::digest(key.spki_der()))
        );
        assert!(
            public_keys(&admin, &key)
                .await
                .iter()
                .all(|pk| *pk == expected)
        );
    }
    let key = TestKey::p256();
    for (form, expected) in [
        (PublicKeyForm::Pem, key.public_pem()),
        (PublicKeyForm::Empty, String::new()),
    ] {
        emu.set_profile(Profile {
            public_key_form: form,
            ..Profile::strict()
        })
        .unwrap();
        assert!(
            public_keys(&admin, &key)
                .await
                .iter()
                .all(|pk| *pk == expected),
            "{form:?}"
        );
    }
}

#[tokio::test]
async fn profile_is_read_and_replaced_over_http_shown_in_state_and_restored_by_reset() {
    let emu = start().await;
    let profile = control(&emu, Method::GET, "/_emulator/profile", None)
        .await
        .ok();
    assert_eq!(profile, serde_json::to_value(Profile::strict()).unwrap());
    assert_eq!(profile["identityKeyRotation"], "refused");
    assert_eq!(profile["publicKeyForm"], "fingerprint");
    assert_eq!(profile["defaultDaysValid"], Value::Null);

    let set = json!({ "identityKeyRotation": "allowed", "publicKeyForm": "empty" });
    let now = control(&emu, Method::PUT, "/_emulator/profile", Some(set))
        .await
        .ok();
    assert_eq!(now["identityKeyRotation"], "allowed");
    assert_eq!(now["externalIdInResponses"], false, "omitted: strict");
    assert_eq!(
        emu.profile().identity_key_rotation,
        IdentityKeyRotation::Allowed
    );
    let state = control(&emu, Method::GET, "/_emulator/state", None)
        .await
        .ok();
    assert_eq!(state["profile"], now);

    for bad in [json!({ "defaultDaysValid": 0 }), json!({ "bogus": true })] {
        control(&emu, Method::PUT, "/_emulator/profile", Some(bad))
            .await
            .error(StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        emu.profile().public_key_form,
        PublicKeyForm::Empty,
        "refused PUTs changed nothing"
    );
    control(&emu, Method::POST, "/_emulator/reset", None)
        .await
        .ok();
    assert_eq!(emu.profile(), Profile::strict());
}

fn assigned_roles(sa: &Value) -> Vec<String> {
    sa["userInfo"]["permissionAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["permissionId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_service_account_without_permission_id_has_no_roles_unless_inheriting_is_switched_on() {
    let emu = start().await;
    let admin = admin(&emu).await;
    let (plain, _) = create_service_account(&admin, "plain", &TestKey::p256(), json!({})).await;
    assert!(assigned_roles(&plain).is_empty(), "{plain}");

    emu.set_profile(Profile {
        service_accounts_inherit_creator_permissions: true,
        ..Profile::strict()
    })
    .unwrap();
    let (heir, heir_client) =
        create_service_account(&admin, "heir", &TestKey::p256(), json!({})).await;
    let state = emu.state();
    let admin_roles = state
        .users
        .iter()
        .find(|u| u.user_id == emu.bootstrap().admin.user_id)
        .unwrap()
        .permission_ids
        .clone();
    assert!(!admin_roles.is_empty());
    assert_eq!(assigned_roles(&heir), admin_roles, "the creator's roles");
    // And they work: the heir may do what its creator may, e.g. list service accounts.
    heir_client.get("/auth/service-accounts").await.ok();
}
