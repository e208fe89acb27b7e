//! The access control in force, and its replacement while the server runs: who may call
//! (`auth::Authenticator`, from `[[principals]]`) and what each agency may see
//! (`disclosure::Disclosure`, from `[[agencies]]`). The operator edits the config and
//! sends SIGHUP (`huduma-registry serve` then reads it again and, if it is valid, puts
//! both in force whole; if not, keeps what is in force and says why).
//!
//! Each call is judged by what is in force when it arrives. A change stream opened
//! before a reload ends (UNAUTHENTICATED) once the credential it was opened with no
//! longer names its principal, or that principal may now see something else: a
//! withdrawn token stops being served at once, not at the next reconnection.

use std::sync::Arc;

use tokio::sync::watch;
use tonic::{Request, Status};

use crate::auth::{Authenticator, Credential, Principal};
use crate::config::Config;
use crate::disclosure::{Disclosure, View};

/// Who may call and what each agency may see, as one config said.
#[derive(Debug)]
pub struct InForce {
    pub authenticator: Authenticator,
    pub disclosure: Disclosure,
}

impl InForce {
    /// From a config whose principals were checked (`config::Loaded::read`).
    pub fn of(config: &Config) -> Self {
        Self::renewed(config, &Authenticator::default())
    }

    /// [`InForce::of`], in place of what `previous` authenticated: each principal keeps
    /// what it has used of an unchanged rate ([`Authenticator::renewed`]).
    pub fn renewed(config: &Config, previous: &Authenticator) -> Self {
        Self {
            authenticator: Authenticator::renewed(&config.principals, previous),
            disclosure: Disclosure::new(&config.agencies),
        }
    }

    /// Whether a call authenticated by `credential` as `principal`, seeing `view`,
    /// would still be so.
    pub fn still_admits(&self, credential: &Credential, principal: &Principal, view: &View) -> bool {
        self.authenticator.names(credential).is_some_and(|p| **p == *principal)
            && self.disclosure.view_for(principal) == *view
    }
}

/// A handle on the access control in force, for the services and the interceptor.
#[derive(Clone, Debug)]
pub struct AccessControl(watch::Receiver<Arc<InForce>>);

/// Replaces the access control in force ([`AccessControl`]); held by the server's owner.
#[derive(Clone, Debug)]
pub struct Reloader(Arc<watch::Sender<Arc<InForce>>>);

/// What a reload put in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    pub principals: usize,
    pub agency_policies: usize,
}

/// The access control `config` says, and the handle that replaces it.
pub fn in_force(config: &Config) -> (AccessControl, Reloader) {
    let (sender, receiver) = watch::channel(Arc::new(InForce::of(config)));
    (AccessControl(receiver), Reloader(Arc::new(sender)))
}

impl AccessControl {
    /// What is in force now.
    pub fn current(&self) -> Arc<InForce> {
        Arc::clone(&self.0.borrow())
    }

    /// The interceptor: authenticates each call by what is in force and attaches its
    /// principal and credential.
    pub fn intercept(&self, request: Request<()>) -> Result<Request<()>, Status> {
        self.current().authenticator.intercept(request)
    }

    /// What a long-lived stream of `principal`'s, opened with `credential` and seeing
    /// `view`, is granted: ended once a reload withdraws it ([`Grant`]).
    pub fn grant(&self, credential: Credential, principal: Arc<Principal>, view: View) -> Grant {
        Grant { watch: self.0.clone(), credential, principal, view }
    }
}

/// What a long-lived stream was opened with, held against reloads.
#[derive(Debug)]
pub struct Grant {
    watch: watch::Receiver<Arc<InForce>>,
    credential: Credential,
    principal: Arc<Principal>,
    view: View,
}

impl Grant {
    /// Whether a reload since the last look withdrew it: its credential no longer
    /// names its principal, or the principal no longer sees its view.
    pub fn is_withdrawn(&mut self) -> bool {
        self.watch.has_changed().unwrap_or(false) && !self.admitted_by_newest()
    }

    /// Resolves once a reload withdraws it; never, if no reload can come (the
    /// server's owner is gone).
    pub async fn withdrawn(&mut self) {
        loop {
            if self.watch.changed().await.is_err() {
                return std::future::pending().await;
            }
            if !self.admitted_by_newest() {
                return;
            }
        }
    }

    /// Whether what is in force now (marked seen) still admits it.
    fn admitted_by_newest(&mut self) -> bool {
        self.watch.borrow_and_update().still_admits(&self.credential, &self.principal, &self.view)
    }

    /// The refusal a withdrawn stream ends with.
    pub fn status(&self) -> Status {
        Status::unauthenticated(format!(
            "the access of {} was changed by a reload of the server's principals; call again with a credential in force",
            self.principal.name
        ))
    }
}

impl Reloader {
    /// Puts what `config` says in force for every call from now on (`config` checked
    /// as `config::Loaded::read` checks it).
    pub fn reload(&self, config: &Config) -> Reloaded {
        let in_force = InForce::renewed(config, &self.0.borrow().authenticator);
        self.0.send_replace(Arc::new(in_force));
        Reloaded { principals: config.principals.len(), agency_policies: config.agencies.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::config::{Loaded, ensure_dev_config};
    use crate::disclosure::Attribute;

    fn config() -> Config {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = ensure_dev_config(dir.path()).unwrap();
        Loaded::read(&path).unwrap().config
    }

    fn token(config: &Config, name: &str) -> Credential {
        let token = config.principals.iter().find(|p| p.name == name).unwrap().token.clone().unwrap();
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let request =
            InForce::of(config).authenticator.intercept(Request::from_parts(metadata, Default::default(), ()));
        crate::auth::credential(&request.unwrap()).unwrap()
    }

    /// A grant survives a reload that leaves its principal's credential and view as
    /// they were, and is withdrawn by one that changes either; a reload elsewhere
    /// (another principal, another agency's policy) leaves it.
    #[tokio::test]
    async fn a_grant_is_withdrawn_exactly_when_its_credential_or_view_changes() {
        let started = config();
        let (access, reloader) = in_force(&started);
        let kra = access.current().authenticator.names(&token(&started, "kra")).cloned().unwrap();
        assert_eq!((kra.name.as_str(), kra.role), ("kra", Role::Agency));
        let view = access.current().disclosure.view_for(&kra);
        let mut grant = access.grant(token(&started, "kra"), Arc::clone(&kra), view);
        assert!(!grant.is_withdrawn(), "nothing was reloaded");

        let mut changed = started.clone();
        reloader.reload(&changed);
        assert!(!grant.is_withdrawn(), "the same config again");
        changed.principals.iter_mut().find(|p| p.name == "nhif").unwrap().token =
            Some("another-nhif-token-0123".into());
        changed.agencies.iter_mut().find(|a| a.code == "NHIF").unwrap().huduma_number = true;
        reloader.reload(&changed);
        assert!(!grant.is_withdrawn(), "another principal's token, another agency's policy");

        let mut narrowed = changed.clone();
        narrowed
            .agencies
            .iter_mut()
            .find(|a| a.code == "KRA")
            .unwrap()
            .attributes
            .retain(|a| *a != Attribute::DateOfBirth);
        reloader.reload(&narrowed);
        assert!(grant.is_withdrawn(), "KRA may see less");

        let kra_view = |c: &Config| InForce::of(c).disclosure.view_for(&kra);
        let mut grant = access.grant(token(&started, "kra"), Arc::clone(&kra), kra_view(&started));
        reloader.reload(&started);
        assert!(!grant.is_withdrawn(), "back to the view it was granted");
        let mut renamed = started.clone();
        renamed.principals.iter_mut().find(|p| p.name == "kra").unwrap().name = "kra-gateway".into();
        reloader.reload(&renamed);
        assert!(grant.is_withdrawn(), "the token now names another principal");

        let mut grant = access.grant(token(&started, "kra"), Arc::clone(&kra), kra_view(&started));
        reloader.reload(&started);
        let waiting = tokio::spawn(async move { grant.withdrawn().await });
        let mut rotated = started.clone();
        rotated.principals.iter_mut().find(|p| p.name == "kra").unwrap().token = Some("rotated-kra-token-0123".into());
        reloader.reload(&rotated);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("a rotated token withdraws the stream")
            .unwrap();
    }

    /// With no reloader left, a grant is never withdrawn (and does not spin).
    #[tokio::test]
    async fn without_a_reloader_a_grant_waits_for_ever() {
        let started = config();
        let (access, reloader) = in_force(&started);
        let kra = access.current().authenticator.names(&token(&started, "kra")).cloned().unwrap();
        let view = access.current().disclosure.view_for(&kra);
        let mut grant = access.grant(token(&started, "kra"), kra, view);
        drop(reloader);
        assert!(!grant.is_withdrawn());
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), grant.withdrawn()).await;
        assert!(waited.is_err(), "still waiting");
    }
}
