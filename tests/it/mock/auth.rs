//! SMART Backend Services against the mock: discovery, good and bad client
//! assertions (each refusal with the OAuth error body), Bearer checks, and the
//! injected token expiry. The keys are test-only fixtures (tests/fixtures/smart/).

use std::time::Duration;

use imnm_fhir::mock::{Auth, FaultPlan, MockEhr, Vendor};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{demo_path, http};
use crate::support::root;

const CLIENT: &str = "test-client";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures/smart").join(name)).unwrap()
}

async fn smart(plan: FaultPlan) -> MockEhr {
    let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    MockEhr::builder()
        .dataset(demo_path())
        .vendor(Vendor::Generic)
        .auth(Auth::Smart {
            jwks,
            client_id: CLIENT.into(),
        })
        .faults(plan)
        .start()
        .await
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims as a well-behaved client sends them; `jti` unique.
fn claims(ehr: &MockEhr, jti: &str) -> Value {
    json!({"iss": CLIENT, "sub": CLIENT, "aud": ehr.token_url(), "exp": now() + 240, "jti": jti})
}

fn sign(claims: &Value, alg: Algorithm, key_file: &str) -> String {
    let pem = fixture(key_file);
    let (key, kid) = match alg {
        Algorithm::ES384 => (EncodingKey::from_ec_pem(&pem).unwrap(), "test-es384"),
        _ => (EncodingKey::from_rsa_pem(&pem).unwrap(), "test-rs384"),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

async fn ask_token(ehr: &MockEhr, assertion: &str, scope: &str) -> (u16, Value) {
    let resp = http()
        .post(ehr.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn token(ehr: &MockEhr, jti: &str) -> String {
    let (status, body) = ask_token(
        ehr,
        &sign(&claims(ehr, jti), Algorithm::RS384, "rs384-private.pem"),
        "system/*.rs",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn discovery_sits_under_the_base() {
    let ehr = smart(FaultPlan::none()).await;
    let resp = http()
        .get(format!("{}/.well-known/smart-configuration", ehr.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let config: Value = resp.json().await.unwrap();
    assert_eq!(config["token_endpoint"], ehr.token_url());
    assert!(config["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("ES384")));
    let open = super::start(Vendor::Generic).await;
    let (status, _) = super::get(&format!("{}/.well-known/smart-configuration", open.base_url())).await;
    assert_eq!(status, 404, "no auth, no SMART configuration");
}

#[tokio::test]
async fn good_assertions_get_tokens_for_v1_and_v2_scopes() {
    let ehr = smart(FaultPlan::none()).await;
    let rs = sign(&claims(&ehr, "a"), Algorithm::RS384, "rs384-private.pem");
    let (status, body) = ask_token(&ehr, &rs, "system/*.read").await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("bearer")));
    assert_eq!(body["expires_in"], 300);
    let es = sign(&claims(&ehr, "b"), Algorithm::ES384, "es384-private.pem");
    let (status, body) = ask_token(&ehr, &es, "system/Patient.rs system/Observation.rs").await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("system/Patient.rs system/Observation.rs"))
    );
    let (status, body) = ask_token(
        &ehr,
        &sign(&claims(&ehr, "c"), Algorithm::RS384, "rs384-private.pem"),
        "patient/*.read",
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
}

#[tokio::test]
async fn bad_assertions_are_refused_with_the_oauth_error_body() {
    let ehr = smart(FaultPlan::none()).await;
    let mut wrong_aud = claims(&ehr, "w2");
    wrong_aud["aud"] = json!("https://elsewhere.example/token");
    let mut expired = claims(&ehr, "w3");
    expired["exp"] = json!(now() - 600);
    let mut too_long = claims(&ehr, "w4");
    too_long["exp"] = json!(now() + 3600);
    let cases = [
        (
            "wrong signature",
            sign(&claims(&ehr, "w1"), Algorithm::RS384, "other-rs384-private.pem"),
        ),
        ("wrong aud", sign(&wrong_aud, Algorithm::RS384, "rs384-private.pem")),
        ("expired exp", sign(&expired, Algorithm::RS384, "rs384-private.pem")),
        (
            "exp too far ahead",
            sign(&too_long, Algorithm::ES384, "es384-private.pem"),
        ),
    ];
    for (what, assertion) in cases {
        let (status, body) = ask_token(&ehr, &assertion, "system/*.rs").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client")),
            "{what}: {body}"
        );
        assert!(body["error_description"].is_string(), "{what}");
    }
    let replayed = sign(&claims(&ehr, "once"), Algorithm::RS384, "rs384-private.pem");
    assert_eq!(ask_token(&ehr, &replayed, "system/*.rs").await.0, 200);
    let (status, body) = ask_token(&ehr, &replayed, "system/*.rs").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client")),
        "replayed jti"
    );
}

#[tokio::test]
async fn the_api_wants_a_bearer_token_and_the_journal_never_keeps_it() {
    let ehr = smart(FaultPlan::none()).await;
    let url = format!("{}/Patient", ehr.base_url());
    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let resp = http().get(&url).bearer_auth("made-up").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let (status, _) = super::get(&format!("{}/metadata", ehr.base_url())).await;
    assert_eq!(status, 200, "metadata stays open");

    let t = token(&ehr, "j1").await;
    let resp = http().get(&url).bearer_auth(&t).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let journal = ehr.journal();
    let last = journal.last().unwrap();
    assert!(last.authorization && last.status == 200);
    assert!(!journal
        .iter()
        .any(|e| e.authorization && e.status == 401 && e.path == "/metadata"));
    let text = serde_json::to_string(&journal).unwrap();
    assert!(!text.contains(&t), "the journal never holds a token");
}

#[tokio::test]
async fn scopes_limit_what_a_token_reads_and_writes() {
    let ehr = smart(FaultPlan::none()).await;
    let assertion = sign(&claims(&ehr, "s1"), Algorithm::ES384, "es384-private.pem");
    let (_, body) = ask_token(&ehr, &assertion, "system/Patient.read").await;
    let t = body["access_token"].as_str().unwrap();
    let get = |path: &str| http().get(format!("{}/{path}", ehr.base_url())).bearer_auth(t).send();
    assert_eq!(get("Patient").await.unwrap().status(), 200);
    assert_eq!(get("Observation").await.unwrap().status(), 403);
    let post = http()
        .post(format!("{}/Patient", ehr.base_url()))
        .bearer_auth(t)
        .json(&json!({"resourceType": "Patient"}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 403, "a read scope does not write");
}

#[tokio::test]
async fn a_read_only_token_cleans_up_its_bulk_export() {
    let ehr = smart(FaultPlan::none()).await;
    let t = token(&ehr, "d1").await;
    let kick = http()
        .get(format!("{}/$export?_type=Patient", ehr.base_url()))
        .header("prefer", "respond-async")
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(kick.status(), 202);
    let status_url = kick.headers()["content-location"].to_str().unwrap().to_string();
    let delete = http().delete(&status_url).bearer_auth(&t).send().await.unwrap();
    assert!(delete.status().is_success(), "DELETE answered {}", delete.status());
    let delete = http().delete(&status_url).send().await.unwrap();
    assert_eq!(delete.status(), 401, "still not without a token");
}

#[tokio::test]
async fn tokens_expire_by_lifetime_and_by_injected_use_count() {
    let ehr = smart(FaultPlan::none().token_expiry(2)).await;
    let url = format!("{}/Patient", ehr.base_url());
    let t = token(&ehr, "e1").await;
    let statuses = {
        let mut s = Vec::new();
        for _ in 0..3 {
            s.push(http().get(&url).bearer_auth(&t).send().await.unwrap().status().as_u16());
        }
        s
    };
    assert_eq!(statuses, vec![200, 200, 401]);
    assert_eq!(ehr.journal().last().unwrap().fault.as_deref(), Some("token-expiry"));
    let fresh = token(&ehr, "e2").await;
    assert_eq!(http().get(&url).bearer_auth(&fresh).send().await.unwrap().status(), 200);

    let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let short = MockEhr::builder()
        .auth(Auth::Smart {
            jwks,
            client_id: CLIENT.into(),
        })
        .token_lifetime(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let t = token(&short, "s1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = http()
        .get(format!("{}/Patient", short.base_url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
