//! The gRPC server: opens the registry, binds the port, wires the services behind the
//! authenticating interceptor with bounded messages and deadlines, adds health and
//! reflection, and on shutdown drains in-flight calls, ends the change streams and
//! closes the registry (which commits and flushes what was queued).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::access_control::{self, Reloader};
use crate::config::{Loaded, TlsConfig};
use crate::operator;
use crate::proto::audit_server::AuditServer;
use crate::proto::operations_server::OperationsServer;
use crate::proto::registry_server::RegistryServer;
use crate::proto::resolver_server::ResolverServer;
use crate::service::audit::AuditService;
use crate::service::operations::OperationsService;
use crate::service::paging::Room;
use crate::service::registry::RegistryService;
use crate::service::resolver::ResolverService;

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Open(#[from] operator::OperatorError),
    #[error("binding {listen}: {cause}")]
    Bind { listen: String, cause: std::io::Error },
    #[error("server.metrics_listen {listen}: {reason}")]
    Metrics { listen: String, reason: String },
    #[error("server.tls: {0}")]
    Tls(String),
    #[error("reflection: {0}")]
    Reflection(String),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("a server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A running server.
pub struct Running {
    /// The address the gRPC port is bound to (useful with `listen = "127.0.0.1:0"`).
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    reloader: Reloader,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Drains in-flight calls, ends streams, closes the registry, and waits.
    pub async fn stop(self) -> Result<(), ServeError> {
        self.shutdown.send_replace(true);
        self.task.await?
    }

    /// Waits for the server to end (after [`Running::stop`] from elsewhere, or a failure).
    pub async fn wait(self) -> Result<(), ServeError> {
        self.task.await?
    }

    /// A handle that stops the server when sent `true`.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// A handle that replaces the principals and the agencies' disclosure policies in
    /// force (`access_control`), as a SIGHUP does.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }
}

fn tls_config(tls: &TlsConfig) -> Result<ServerTlsConfig, ServeError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ServeError::Tls(format!("reading {}: {e}", path.display())))
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

/// Opens the registry and starts serving it. Returns once the port is bound.
pub async fn start(loaded: &Loaded) -> Result<Running, ServeError> {
    let server = &loaded.config.server;
    let opening = loaded.clone();
    let registry = Arc::new(tokio::task::spawn_blocking(move || operator::open_registry(&opening)).await??);
    let listener = TcpListener::bind(&server.listen)
        .await
        .map_err(|cause| ServeError::Bind { listen: server.listen.clone(), cause })?;
    let addr = listener.local_addr().map_err(|cause| ServeError::Bind { listen: server.listen.clone(), cause })?;
    if let Some(listen) = &server.metrics_listen {
        let metrics_error = |reason: String| ServeError::Metrics { listen: listen.clone(), reason };
        let at: SocketAddr = listen.parse().map_err(|e: std::net::AddrParseError| metrics_error(e.to_string()))?;
        crate::metrics::install(at).map_err(metrics_error)?;
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    tokio::spawn(report_log_size(registry.durable_size(), shutdown_rx.clone()));
    let reporting = tokio::spawn(report_read_cache(Arc::clone(&registry), shutdown_rx.clone()));

    let (access, reloader) = access_control::in_force(&loaded.config);
    let interceptor = {
        let access = access.clone();
        move |request| access.intercept(request)
    };
    let max = server.max_message_bytes;
    let registry_service = InterceptedService::new(
        RegistryServer::new(RegistryService::new(Arc::clone(&registry), Room::of(max)))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        interceptor.clone(),
    );
    let resolver_service = InterceptedService::new(
        ResolverServer::new(ResolverService::new(
            Arc::clone(&registry),
            access.clone(),
            Room::of(max),
            shutdown_rx.clone(),
        ))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max),
        interceptor.clone(),
    );
    let audit_service = InterceptedService::new(
        AuditServer::new(AuditService::new(Arc::clone(&registry), access.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(16 * 1024 * 1024),
        interceptor.clone(),
    );
    let operations_service = InterceptedService::new(
        OperationsServer::new(OperationsService::new(
            Arc::clone(&registry),
            server.backup_dir.clone(),
            server.fold_space(),
            access.clone(),
            shutdown_rx.clone(),
        ))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max),
        interceptor,
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RegistryServer<RegistryService>>().await;
    health.set_serving::<ResolverServer<ResolverService>>().await;
    health.set_serving::<AuditServer<AuditService>>().await;
    health.set_serving::<OperationsServer<OperationsService>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| ServeError::Reflection(e.to_string()))?;

    let mut builder = Server::builder()
        .timeout(Duration::from_secs(server.request_timeout_secs))
        .concurrency_limit_per_connection(256)
        .max_concurrent_streams(1024)
        .http2_keepalive_interval(Some(Duration::from_secs(30)));
    if let Some(tls) = &server.tls {
        builder = builder.tls_config(tls_config(tls)?).map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    let router = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(registry_service)
        .add_service(resolver_service)
        .add_service(audit_service)
        .add_service(operations_service);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut signal = shutdown_rx;
    let task = tokio::spawn(async move {
        let stopping = async move {
            let _ = signal.wait_for(|stop| *stop).await;
        };
        let served = router.serve_with_incoming_shutdown(incoming, stopping).await;
        health.set_not_serving::<RegistryServer<RegistryService>>().await;
        // The metrics reporter stops at the same signal, concurrently: awaited, so that
        // its handle on the registry is gone before the close rather than perhaps not.
        if let Err(e) = reporting.await {
            tracing::warn!(error = %e, "the metrics reporter did not stop cleanly");
        }
        // Every service (and its handle on the registry) is gone with the router: close
        // the registry, which commits what was queued and flushes.
        let closed = tokio::task::spawn_blocking(move || match Arc::try_unwrap(registry) {
            Ok(registry) => registry.close(),
            Err(registry) => {
                tracing::warn!("the registry is still shared at shutdown; it closes when the last handle goes");
                drop(registry);
            }
        });
        closed.await?;
        served?;
        Ok(())
    });
    tracing::info!(%addr, "serving huduma.v1");
    Ok(Running { addr, shutdown, reloader, task })
}

async fn report_log_size(mut durable: watch::Receiver<u64>, mut shutdown: watch::Receiver<bool>) {
    loop {
        crate::metrics::set_log_size(*durable.borrow_and_update());
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// How often the read cache's and the presence filter's counts are published.
const READ_CACHE_REPORT: Duration = Duration::from_secs(1);

async fn report_read_cache(registry: Arc<registry_core::registry::Registry>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Some(stats) = registry.read_cache_stats() {
            crate::metrics::set_read_cache(stats);
        }
        if let Some(stats) = registry.presence_filter_stats() {
            crate::metrics::set_presence_filter(stats);
        }
        tokio::select! {
            () = tokio::time::sleep(READ_CACHE_REPORT) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// What a reload of the config changed ([`reload_access`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessReload {
    pub reloaded: access_control::Reloaded,
    /// Whether the config changed elsewhere too: those changes take effect only at
    /// the next start.
    pub other_changes: bool,
}

/// Reads the config at `path` again and puts its principals and agencies' disclosure
/// policies in force (`access_control`). A config that does not read or check is
/// refused whole, and what is in force stays. `started` is the config the server
/// started with, to say whether anything else changed.
pub fn reload_access(
    path: &std::path::Path,
    started: &crate::config::Config,
    reloader: &Reloader,
) -> Result<AccessReload, crate::config::ConfigError> {
    let read = Loaded::read(path);
    crate::metrics::access_reloaded(if read.is_ok() { "applied" } else { "refused" });
    let loaded = read?;
    let reloaded = reloader.reload(&loaded.config);
    let rest = |config: &crate::config::Config| {
        let rest = crate::config::Config { principals: Vec::new(), agencies: Vec::new(), ..config.clone() };
        toml::to_string(&rest).ok()
    };
    let other_changes = rest(&loaded.config) != rest(started);
    tracing::info!(reloaded.principals, reloaded.agency_policies, other_changes, "access control reloaded");
    Ok(AccessReload { reloaded, other_changes })
}

/// SIGHUP, the operator's "read the config again", caught from the moment this is
/// installed.
pub struct Hangups {
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Hangups {
    /// Registers the handler now. Must run inside a Tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self { hangup: signal(SignalKind::hangup())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves at the next SIGHUP (never, where there are none).
    pub async fn next(&mut self) {
        #[cfg(unix)]
        if self.hangup.recv().await.is_some() {
            return;
        }
        std::future::pending().await
    }
}

/// SIGTERM and SIGINT (Ctrl-C), caught from the moment this is installed: install it
/// before telling anyone the server is up, so that a signal sent at once is not fatal.
pub struct Termination {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Termination {
    /// Registers the handlers now. Must run inside a Tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self { term: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves on the first SIGTERM or SIGINT.
    pub async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
