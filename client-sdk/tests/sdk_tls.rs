//! The SDK over mTLS: the client certificate is the credential (no token), the CA
//! pins the server, and a certificate the server does not know gets UNAUTHENTICATED.

use huduma_e2e::{TestPki, TestServer};
use huduma_sdk::{Client, Error, HudumaNumber};

#[tokio::test]
async fn an_agency_connects_with_its_certificate_alone() {
    let pki = TestPki::new();
    let server = TestServer::start_with(|dir, loaded| pki.serve_kra_gateway(dir, loaded)).await;
    let endpoint = format!("https://localhost:{}", server.addr.port());
    let unknown = HudumaNumber::with_check_digit(23_456_789_012).unwrap();

    let (cert, key) = pki.leaf(&["kra-gateway"], "kra-gateway", "Kenya Revenue Authority");
    let kra = Client::builder(&endpoint).ca_certificate(pki.ca_pem()).identity(cert, key).connect().await.unwrap();
    // Authenticated as an agency by the certificate: the unknown number is NOT_FOUND,
    // not UNAUTHENTICATED.
    assert!(matches!(kra.resolve(unknown, "PIN check").await, Err(Error::NotFound(_))));
    let keys = kra.verifier_keys().await.unwrap();
    assert_eq!(keys.keys.len(), 1);

    let (cert, key) = pki.leaf(&["intruder"], "intruder", "Kenya Revenue Authority");
    let intruder = Client::builder(&endpoint).ca_certificate(pki.ca_pem()).identity(cert, key).connect().await.unwrap();
    assert!(matches!(intruder.resolve(unknown, "x").await, Err(Error::Unauthenticated(_))));
}
