//! The SDK over mTLS: the client certificate is the credential (no token), the CA
//! pins the server, and a certificate the server does not know gets UNAUTHENTICATED.

use huduma_e2e::TestServer;
use huduma_sdk::{Client, Error, HudumaNumber};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use registry_server::auth::Role;
use registry_server::config::{PrincipalConfig, TlsConfig};

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, names: &[&str], cn: &str) -> (String, String) {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.distinguished_name.push(DnType::OrganizationName, "Kenya Revenue Authority");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn an_agency_connects_with_its_certificate_alone() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "Huduma test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let (server_cert, server_key) = leaf(&ca, &["localhost"], "registry.huduma.test");
    let ca_pem = ca.pem();
    let server = TestServer::start_with(|dir, loaded| {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        loaded.config.server.tls = Some(TlsConfig {
            cert: write("server.crt", &server_cert),
            key: write("server.key", &server_key),
            client_ca: Some(write("clients-ca.crt", &ca_pem)),
        });
        loaded.config.principals.push(PrincipalConfig {
            name: "kra-gateway".into(),
            role: Role::Agency,
            agency: Some("KRA".into()),
            token: None,
            cert_subject: Some("CN=kra-gateway, O=Kenya Revenue Authority".into()),
        });
    })
    .await;
    let endpoint = format!("https://localhost:{}", server.addr.port());
    let unknown = HudumaNumber::with_check_digit(23_456_789_012).unwrap();

    let (cert, key) = leaf(&ca, &["kra-gateway"], "kra-gateway");
    let kra = Client::builder(&endpoint).ca_certificate(ca.pem()).identity(cert, key).connect().await.unwrap();
    // Authenticated as an agency by the certificate: the unknown number is NOT_FOUND,
    // not UNAUTHENTICATED.
    assert!(matches!(kra.resolve(unknown, "PIN check").await, Err(Error::NotFound(_))));
    let keys = kra.verifier_keys().await.unwrap();
    assert_eq!(keys.keys.len(), 1);

    let (cert, key) = leaf(&ca, &["intruder"], "intruder");
    let intruder = Client::builder(&endpoint).ca_certificate(ca.pem()).identity(cert, key).connect().await.unwrap();
    assert!(matches!(intruder.resolve(unknown, "x").await, Err(Error::Unauthenticated(_))));
}
