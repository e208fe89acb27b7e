//! The end-to-end harness: a real registry server (the `registry-server` library's
//! `serve::start`, as the binary runs it) on a loopback port in a temporary directory,
//! and real tonic clients that authenticate as each development principal.

use registry_server::auth::Role;
use registry_server::config::{Loaded, ensure_dev_config};
use registry_server::proto::audit_client::AuditClient;
use registry_server::proto::operations_client::OperationsClient;
use registry_server::proto::registry_client::RegistryClient;
use registry_server::proto::resolver_client::ResolverClient;
use registry_server::serve::{self, Running};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

pub use registry_server::proto as pb;

/// Adds `authorization: Bearer <token>` to every call (or nothing).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Bearer {
    pub fn token(token: &str) -> Self {
        Self(Some(format!("Bearer {token}").parse().expect("a token is ASCII")))
    }

    pub fn none() -> Self {
        Self(None)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// A server in a temporary directory, with the development principals.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub loaded: Loaded,
    running: Option<Running>,
    pub addr: std::net::SocketAddr,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_, _| ()).await
    }

    /// Starts with the development config changed by `adjust` (given the directory).
    pub async fn start_with(adjust: impl FnOnce(&std::path::Path, &mut Loaded)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, _) = ensure_dev_config(dir.path()).expect("dev config");
        let mut loaded = Loaded::read(&path).expect("read config");
        loaded.config.server.listen = "127.0.0.1:0".into();
        loaded.config.server.metrics_listen = None;
        adjust(dir.path(), &mut loaded);
        let running = serve::start(&loaded).await.expect("server starts");
        let addr = running.addr;
        Self { dir, loaded, running: Some(running), addr }
    }

    /// Stops the server (draining calls, closing the registry).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("server stops cleanly");
        }
    }

    /// Stops and starts again on the same data (on a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        // sled's background flusher may hold the directory lock a moment after close.
        for attempt in 0.. {
            match serve::start(&self.loaded).await {
                Ok(running) => {
                    self.addr = running.addr;
                    self.running = Some(running);
                    return;
                }
                Err(e) if attempt < 100 && e.to_string().contains("in use") => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("restart: {e}"),
            }
        }
    }

    /// Stops and starts again on the same data and the same port (so that clients
    /// holding the endpoint reconnect to it).
    pub async fn restart_same_port(&mut self) {
        self.loaded.config.server.listen = self.addr.to_string();
        self.restart().await;
    }

    /// Stops the server, registers `count` synthetic persons in-process (far faster than
    /// over gRPC), and starts it again on the same data.
    pub async fn fill(&mut self, count: u64) {
        use registry_server::operator;
        use std::sync::Arc;
        self.stop().await;
        let loaded = self.loaded.clone();
        let registry = tokio::task::spawn_blocking(move || operator::open_registry(&loaded)).await.unwrap();
        let registry = Arc::new(registry.expect("the registry opens"));
        let report = operator::load(Arc::clone(&registry), "fill", 0, count, 64, Arc::new(|_, _| ())).await;
        assert_eq!((report.accepted, report.refused), (count, 0), "{:?}", report.first_refusal);
        let registry = Arc::into_inner(registry).expect("the only handle");
        tokio::task::spawn_blocking(move || registry.close()).await.unwrap();
        self.restart().await;
    }

    /// Changes the config's principals or agencies' policies with `adjust` and puts
    /// them in force while serving, as a SIGHUP does (`access_control`).
    pub fn reload_access(&mut self, adjust: impl FnOnce(&mut Loaded)) {
        adjust(&mut self.loaded);
        let running = self.running.as_ref().expect("the server is running");
        running.reloader().reload(&self.loaded.config);
    }

    /// Another server, on this one's keys, secrets and principals, serving the data
    /// directory `data_dir` (a backup of this one's, restored).
    pub async fn start_over(&self, data_dir: std::path::PathBuf) -> TestServer {
        let (keys, principals) = (self.loaded.config.keys.clone(), self.loaded.config.principals.clone());
        TestServer::start_with(move |_, loaded| {
            loaded.config.server.data_dir = data_dir;
            loaded.config.keys = keys;
            loaded.config.principals = principals;
        })
        .await
    }

    /// The endpoint URL clients connect to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token of the first development principal with `role`.
    pub fn token(&self, role: Role) -> String {
        self.principal(role).token.clone().expect("dev principals have tokens")
    }

    pub fn principal(&self, role: Role) -> &registry_server::config::PrincipalConfig {
        self.loaded.config.principals.iter().find(|p| p.role == role).expect("a dev principal of each role")
    }

    /// The token of the development principal named `name`.
    pub fn token_of(&self, name: &str) -> String {
        let p = self.loaded.config.principals.iter().find(|p| p.name == name).expect("principal");
        p.token.clone().expect("token")
    }

    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr)).expect("endpoint").connect().await.expect("connect")
    }

    pub async fn registry(&self, bearer: Bearer) -> RegistryClient<Authed> {
        RegistryClient::new(InterceptedService::new(self.channel().await, bearer))
    }

    pub async fn resolver(&self, bearer: Bearer) -> ResolverClient<Authed> {
        ResolverClient::new(InterceptedService::new(self.channel().await, bearer))
    }

    pub async fn audit(&self, bearer: Bearer) -> AuditClient<Authed> {
        AuditClient::new(InterceptedService::new(self.channel().await, bearer))
    }

    pub async fn operations(&self, bearer: Bearer) -> OperationsClient<Authed> {
        OperationsClient::new(InterceptedService::new(self.channel().await, bearer))
    }

    /// The durable size of the log, as an auditor sees it.
    pub async fn log_size(&self) -> u64 {
        let mut audit = self.audit(Bearer::token(&self.token(Role::Auditor))).await;
        audit
            .get_verifier_keys(pb::GetVerifierKeysRequest::default())
            .await
            .expect("verifier keys")
            .into_inner()
            .log_size
    }

    /// Waits until the newest signed checkpoint of each log covers the whole log, as
    /// a backup (which copies up to it) needs; panics after 30 s.
    pub async fn wait_for_checkpoints(&self) {
        let mut audit = self.audit(Bearer::token(&self.token(Role::Auditor))).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for log in [pb::LogName::Identity, pb::LogName::Access] {
            loop {
                let keys = pb::GetVerifierKeysRequest { log: log as i32 };
                let size = audit.get_verifier_keys(keys).await.expect("verifier keys").into_inner().log_size;
                let newest = pb::GetCheckpointRequest { size: 0, log: log as i32 };
                // A C2SP checkpoint's body: the origin, then the tree size in decimal.
                let signed = match audit.get_checkpoint(newest).await {
                    Ok(answer) => answer.into_inner().note.lines().nth(1).and_then(|n| n.parse::<u64>().ok()),
                    Err(_) => None,
                };
                // An empty log has no checkpoint to wait for.
                if size == 0 || signed == Some(size) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the {log:?} log's checkpoint ({signed:?}) did not reach its size ({size}) in 30 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// A look-up of `number` for `purpose`.
pub fn by_number(number: &str, purpose: &str) -> pb::ResolveRequest {
    pb::ResolveRequest { key: Some(pb::resolve_request::Key::HudumaNumber(number.into())), purpose: purpose.into() }
}

/// `number` resolved by a registrar at the counter.
pub async fn resolve(server: &TestServer, number: &str) -> pb::ResolveResponse {
    let mut resolver = server.resolver(Bearer::token(&server.token(Role::Registrar))).await;
    resolver.resolve(by_number(number, "counter service")).await.expect("resolve").into_inner()
}

/// The next change a live `WatchChanges` stream sends, within 10 s: its index, kind,
/// status, number and record ids.
pub async fn next_change(changes: &mut tonic::Streaming<pb::Change>) -> (u64, i32, i32, String, Vec<String>) {
    use tokio_stream::StreamExt;
    let wait = tokio::time::timeout(std::time::Duration::from_secs(10), changes.next());
    let change = wait.await.expect("a change within 10 s").expect("the stream goes on").expect("a change");
    (change.index, change.kind, change.status, change.huduma_number, change.record_ids)
}

/// Asserts a refusal: its code, that its message names `words`, and that the log did not
/// grow; returns it.
pub async fn refused<T: std::fmt::Debug>(
    server: &TestServer,
    before: u64,
    result: Result<T, Status>,
    code: tonic::Code,
    words: &str,
) -> Status {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(status.message().contains(words), "{:?} should name {words:?}", status.message());
    assert_eq!(server.log_size().await, before, "a refusal wrote nothing");
    status
}

/// Plausible demographics, varied by `i`, never likely duplicates of one another.
pub fn demographics(i: u64) -> pb::Demographics {
    let d = registry_core::synthetic::distinct_person(i);
    pb::Demographics {
        given_name: d.given_name,
        family_name: d.family_name,
        other_names: d.other_names,
        date_of_birth: d.date_of_birth,
        sex: match d.sex {
            registry_core::demographics::Sex::Female => pb::Sex::Female,
            registry_core::demographics::Sex::Male => pb::Sex::Male,
            registry_core::demographics::Sex::Intersex => pb::Sex::Intersex,
        } as i32,
        place_of_birth: d.place_of_birth,
    }
}

pub fn register_request(request_id: &str, i: u64) -> pb::RegisterPersonRequest {
    pb::RegisterPersonRequest {
        request_id: request_id.into(),
        demographics: Some(demographics(i)),
        centre: "GPO-NAIROBI".into(),
        duplicate_override_justification: String::new(),
    }
}

/// Registers a person as the registrar; returns the number.
pub async fn register(server: &TestServer, request_id: &str, i: u64) -> String {
    let mut registry = server.registry(Bearer::token(&server.token(Role::Registrar))).await;
    registry.register_person(register_request(request_id, i)).await.expect("register").into_inner().huduma_number
}

/// A test PKI: a CA, and certificates it signs (rcgen).
pub struct TestPki {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Huduma test CA");
        Self { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA") }
    }

    /// The CA's certificate (PEM).
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate and key (PEM) for `names`, with subject CN=`cn`, O=`org`.
    pub fn leaf(&self, names: &[&str], cn: &str, org: &str) -> (String, String) {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, org);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    /// [`Self::configure`] with the KRA gateway, an agency known only by its
    /// certificate (`CN=kra-gateway, O=Kenya Revenue Authority`).
    pub fn serve_kra_gateway(&self, dir: &std::path::Path, loaded: &mut Loaded) {
        let principal = registry_server::config::PrincipalConfig {
            name: "kra-gateway".into(),
            role: Role::Agency,
            agency: Some("KRA".into()),
            token: None,
            cert_subject: Some("CN=kra-gateway, O=Kenya Revenue Authority".into()),
            calls_per_second: None,
        };
        self.configure(dir, loaded, principal);
    }

    /// Serves with TLS from this CA (server name `localhost`), requiring client
    /// certificates from it, and adds `principal` known by its certificate subject.
    pub fn configure(
        &self,
        dir: &std::path::Path,
        loaded: &mut Loaded,
        principal: registry_server::config::PrincipalConfig,
    ) {
        let (cert, key) = self.leaf(&["localhost"], "registry.huduma.test", "Huduma");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write a PEM file");
            path
        };
        loaded.config.server.tls = Some(registry_server::config::TlsConfig {
            cert: write("server.crt", &cert),
            key: write("server.key", &key),
            client_ca: Some(write("clients-ca.crt", &self.ca_pem())),
        });
        loaded.config.principals.push(principal);
    }
}
