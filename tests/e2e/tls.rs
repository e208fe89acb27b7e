//! mTLS: with `[server.tls]` and a client CA, a caller is known by its certificate's
//! subject; an unknown subject is UNAUTHENTICATED, and a client without a certificate
//! (or without TLS) does not get in at all.

use huduma_e2e::*;
use registry_server::proto::resolver_client::ResolverClient;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

async fn connect(server: &TestServer, ca: &str, identity: Option<(String, String)>) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(format!("https://localhost:{}", server.addr.port())).unwrap();
    endpoint.tls_config(tls).map_err(|e| e.to_string())?.connect().await.map_err(|e| e.to_string())
}

fn resolve_request(number: &str) -> pb::ResolveRequest {
    pb::ResolveRequest {
        key: Some(pb::resolve_request::Key::HudumaNumber(number.into())),
        purpose: "mTLS check".into(),
    }
}

#[tokio::test]
async fn mtls_clients_are_known_by_their_certificate_subject() {
    let pki = TestPki::new();
    let subject = registry_server::auth::subject_of(&rustls_pem_der(
        &pki.leaf(&["kra-gateway"], "kra-gateway", "Kenya Revenue Authority").0,
    ))
    .unwrap();
    assert_eq!(subject, "CN=kra-gateway, O=Kenya Revenue Authority", "the subject form the config names");
    let mut server = TestServer::start_with(|dir, loaded| pki.serve_kra_gateway(dir, loaded)).await;

    // A registrar over mTLS with a token (its certificate's subject is not configured,
    // so it is refused: a certificate names the caller; a token cannot override it).
    let registrar_cert = pki.leaf(&["gpo"], "gpo-terminal-7", "Huduma Centre GPO");
    let channel = connect(&server, &pki.ca_pem(), Some(registrar_cert)).await.expect("TLS handshake");
    let mut resolver = ResolverClient::new(channel);
    let err = resolver.resolve(resolve_request(&unknown_number())).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("gpo-terminal-7"), "{}", err.message());

    // The KRA gateway's certificate is its credential: no token needed.
    let kra_cert = pki.leaf(&["kra-gateway"], "kra-gateway", "Kenya Revenue Authority");
    let mut kra = ResolverClient::new(connect(&server, &pki.ca_pem(), Some(kra_cert)).await.expect("TLS handshake"));
    let err = kra.resolve(resolve_request(&unknown_number())).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "authenticated and authorised; the number is simply unknown");

    // No client certificate, or no TLS at all: no answer from the services.
    let bare = connect(&server, &pki.ca_pem(), None).await;
    if let Ok(channel) = bare {
        let err = ResolverClient::new(channel).resolve(resolve_request(&unknown_number())).await.unwrap_err();
        assert_ne!(err.code(), Code::NotFound, "a client without a certificate reaches no service");
    }
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{}", server.addr.port())).unwrap().connect().await;
    if let Ok(channel) = plain {
        let err = ResolverClient::new(channel).resolve(resolve_request(&unknown_number())).await.unwrap_err();
        assert_ne!(err.code(), Code::NotFound, "plaintext reaches no service");
    }
    server.stop().await;
}

fn unknown_number() -> String {
    huduma_number::HudumaNumber::with_check_digit(23_456_789_012).unwrap().compact()
}

/// The DER bytes of a PEM certificate.
fn rustls_pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&body)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}
