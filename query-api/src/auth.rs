//! Who is asking: credentials, password hashes and bearer tokens.
//!
//! Credentials live in the gateway's own sled database, never in events: one
//! record per (normalised) e-mail holding the customer id and an argon2id
//! hash. Registration first *reserves* the e-mail with a compare-and-swap (so
//! two racing registrations cannot both win), then the customers service
//! records the customer, then the reservation is confirmed; a failed call
//! releases it. `login` checks the hash and issues a JWT (HS256) whose
//! subject is the customer id, or `admin` for the admin account configured
//! by `SHOP_ADMIN_EMAIL` / `SHOP_ADMIN_PASSWORD`.

use std::{
    collections::HashMap,
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{backend::Actor, error::GatewayError};

const ISSUER: &str = "shop-query-api";
/// A pending registration older than this is taken to be abandoned (the
/// gateway stopped mid-way) and may be taken over.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// How many verified bearer tokens are remembered.
const VERIFIED_TOKENS: usize = 10_000;

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// No bearer token.
    Anonymous,
    /// A customer, by id.
    Customer(Uuid),
    /// The admin account.
    Admin,
    /// A bearer token that does not verify; why.
    Invalid(String),
}

impl Identity {
    /// The actor, when authenticated.
    pub fn actor(&self) -> Option<Actor> {
        match self {
            Self::Customer(id) => Some(Actor::Customer(*id)),
            Self::Admin => Some(Actor::Admin),
            Self::Anonymous | Self::Invalid(_) => None,
        }
    }

    /// Any authenticated actor, else `UNAUTHENTICATED`.
    pub fn require_actor(&self) -> Result<Actor, GatewayError> {
        match self {
            Self::Invalid(reason) => Err(GatewayError::unauthenticated(reason.clone())),
            _ => self.actor().ok_or_else(|| {
                GatewayError::unauthenticated(
                    "log in first: send Authorization: Bearer <token from login>",
                )
            }),
        }
    }

    /// A customer, else `UNAUTHENTICATED` or (for the admin) `FORBIDDEN`.
    pub fn require_customer(&self) -> Result<Uuid, GatewayError> {
        match self.require_actor()? {
            Actor::Customer(id) => Ok(id),
            Actor::Admin => Err(GatewayError::forbidden(
                "the admin account has no cart, wishlist or orders of its own",
            )),
        }
    }

    /// The admin, else `UNAUTHENTICATED` or `FORBIDDEN`.
    pub fn require_admin(&self) -> Result<(), GatewayError> {
        match self.require_actor()? {
            Actor::Admin => Ok(()),
            Actor::Customer(_) => Err(GatewayError::forbidden("this needs the admin account")),
        }
    }
}

/// How expensive password hashing is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordHashing {
    /// argon2id with the crate's recommended parameters (19 MiB, 2 passes).
    Standard,
    /// argon2id with the smallest parameters, for tests and benchmarks only.
    Fast,
}

/// What the authenticator needs.
#[derive(Clone)]
pub struct AuthSettings {
    /// The admin account's e-mail.
    pub admin_email: String,
    /// The admin account's password.
    pub admin_password: String,
    /// The HS256 signing secret.
    pub jwt_secret: Vec<u8>,
    /// How long issued tokens stay valid.
    pub token_ttl: Duration,
    /// Hashing cost.
    pub hashing: PasswordHashing,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("admin_email", &self.admin_email)
            .field("token_ttl", &self.token_ttl)
            .field("hashing", &self.hashing)
            .finish_non_exhaustive()
    }
}

/// Why the credentials store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// sled failed.
    #[error("cannot open the credentials database at {path}: {source}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        source: sled::Error,
    },
    /// The admin password cannot be hashed.
    #[error("cannot hash the admin password: {0}")]
    Hash(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RecordState {
    Pending,
    Active,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CredentialRecord {
    customer_id: Uuid,
    password_hash: String,
    state: RecordState,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    token: Option<String>,
    reserved_at_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iss: String,
    iat: u64,
    exp: u64,
}

/// The outcome of reserving an e-mail for a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved for `customer_id`: go on and register the customer.
    Reserved {
        /// The id to register.
        customer_id: Uuid,
    },
    /// The same registration (same e-mail and client idempotency key) already
    /// completed: its answer.
    Completed {
        /// The customer id.
        customer_id: Uuid,
        /// The consistency token it answered.
        token: String,
    },
}

/// Credentials, password hashes and bearer tokens.
pub struct Authenticator {
    db: sled::Db,
    /// One flush at a time: concurrent `flush_async` calls can deadlock in
    /// sled 0.34 (its issues #1308, #1241), which hung the gateway under
    /// parallel sign-ups. A blocking flush on the blocking pool, serialised,
    /// does not; waiters that queue behind a flush are covered by the next.
    flush_lock: tokio::sync::Mutex<()>,
    /// Bounds the argon2 work running at once to the cores there are: each
    /// hash holds its memory cost (19 MiB by default) while it runs, so 50
    /// sign-ups at once would otherwise take a gigabyte, and run no faster.
    hashing: tokio::sync::Semaphore,
    credentials: sled::Tree,
    params: Params,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    token_ttl: Duration,
    admin_email: String,
    admin_hash: String,
    dummy_hash: String,
    verified: parking_lot::Mutex<HashMap<String, (Identity, u64)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("admin_email", &self.admin_email)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Lower-cases and trims an e-mail and checks its shape (the domain's
/// `Email`, as the customers service reads it); `INVALID_INPUT` if it is not one.
pub fn normalise_email(raw: &str) -> Result<String, GatewayError> {
    domain::values::Email::parse(raw)
        .map(|email| email.as_str().to_owned())
        .map_err(|error| GatewayError::invalid("email", error.to_string()))
}

/// Checks a new password: 8 to 128 characters.
pub fn check_password(password: &str) -> Result<(), GatewayError> {
    let length = password.chars().count();
    if !(8..=128).contains(&length) {
        return Err(GatewayError::invalid(
            "password",
            "a password has 8 to 128 characters",
        ));
    }
    Ok(())
}

fn hash_with(params: &Params, password: &[u8]) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|error| error.to_string())?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

fn verify(hash: &str, password: &[u8]) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
}

impl Authenticator {
    /// Opens (or creates) the credentials database in `dir`.
    pub fn open(dir: &Path, settings: AuthSettings) -> Result<Self, AuthError> {
        // A record per customer: a small page cache is plenty.
        let db = sled::Config::new()
            .path(dir.join("credentials"))
            .cache_capacity(2 * 1024 * 1024)
            .open()
            .map_err(|source| AuthError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        Self::with_db(db, settings)
    }

    /// A credentials database that is deleted when dropped (tests, benchmarks).
    pub fn temporary(settings: AuthSettings) -> Result<Self, AuthError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|source| AuthError::Open {
                path: "(temporary)".to_owned(),
                source,
            })?;
        Self::with_db(db, settings)
    }

    fn with_db(db: sled::Db, settings: AuthSettings) -> Result<Self, AuthError> {
        let credentials = db
            .open_tree("credentials")
            .map_err(|source| AuthError::Open {
                path: "credentials tree".to_owned(),
                source,
            })?;
        let params = match settings.hashing {
            PasswordHashing::Standard => Params::default(),
            PasswordHashing::Fast => Params::new(Params::MIN_M_COST, 1, 1, None)
                .map_err(|error| AuthError::Hash(error.to_string()))?,
        };
        let admin_hash =
            hash_with(&params, settings.admin_password.as_bytes()).map_err(AuthError::Hash)?;
        let dummy_hash =
            hash_with(&params, b"no account has this password").map_err(AuthError::Hash)?;
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        Ok(Self {
            db,
            flush_lock: tokio::sync::Mutex::new(()),
            hashing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            ),
            credentials,
            params,
            encoding: EncodingKey::from_secret(&settings.jwt_secret),
            decoding: DecodingKey::from_secret(&settings.jwt_secret),
            validation,
            token_ttl: settings.token_ttl,
            admin_email: settings.admin_email.trim().to_lowercase(),
            admin_hash,
            dummy_hash,
            verified: parking_lot::Mutex::new(HashMap::new()),
        })
    }

    /// Reads the `Authorization` header's value.
    pub fn identify(&self, authorization: Option<&str>) -> Identity {
        let Some(value) = authorization
            .map(str::trim)
            .filter(|value| !value.is_empty())
        else {
            return Identity::Anonymous;
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Identity::Invalid(
                    "the Authorization header must be `Bearer <token>`".to_owned(),
                )
            }
        };
        self.verify_token(token)
    }

    /// Checks a bearer token. Tokens already verified are remembered until
    /// they expire, so a client's every request does not redo the HMAC.
    pub fn verify_token(&self, token: &str) -> Identity {
        let now = unix_now().as_secs();
        if let Some((identity, expires)) = self.verified.lock().get(token) {
            if *expires > now {
                return identity.clone();
            }
        }
        let claims = match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => data.claims,
            Err(_) => {
                return Identity::Invalid("the bearer token is invalid or expired".to_owned())
            }
        };
        let identity = Self::identity_of(&claims);
        if identity.actor().is_some() {
            let mut verified = self.verified.lock();
            if verified.len() >= VERIFIED_TOKENS {
                verified.retain(|_, (_, expires)| *expires > now);
                if verified.len() >= VERIFIED_TOKENS {
                    verified.clear();
                }
            }
            verified.insert(token.to_owned(), (identity.clone(), claims.exp));
        }
        identity
    }

    fn identity_of(claims: &Claims) -> Identity {
        match (claims.role.as_str(), claims.sub.as_str()) {
            ("admin", "admin") => Identity::Admin,
            ("customer", sub) => Uuid::parse_str(sub).map_or_else(
                |_| Identity::Invalid("the bearer token names no customer".to_owned()),
                Identity::Customer,
            ),
            _ => Identity::Invalid("the bearer token has an unknown role".to_owned()),
        }
    }

    /// Issues a bearer token for `actor`.
    pub fn issue_token(&self, actor: Actor) -> Result<String, GatewayError> {
        let now = unix_now().as_secs();
        let (sub, role) = match actor {
            Actor::Customer(id) => (id.to_string(), "customer"),
            Actor::Admin => ("admin".to_owned(), "admin"),
        };
        let claims = Claims {
            sub,
            role: role.to_owned(),
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now.saturating_add(self.token_ttl.as_secs()),
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .map_err(GatewayError::internal)
    }

    /// Hashes a password off the async threads (argon2 is meant to be slow).
    pub async fn hash_password(&self, password: String) -> Result<String, GatewayError> {
        let params = self.params.clone();
        self.argon2(move || hash_with(&params, password.as_bytes()))
            .await?
            .map_err(GatewayError::internal)
    }

    /// Runs argon2 work off the async threads, at most one per core at a time.
    async fn argon2<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, GatewayError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(GatewayError::internal)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(GatewayError::internal)
    }

    /// Checks e-mail and password; a bearer token on success, else
    /// `UNAUTHENTICATED` (the same answer for an unknown e-mail and a wrong
    /// password, after the same work).
    pub async fn login(&self, email: &str, password: String) -> Result<String, GatewayError> {
        let refused = || GatewayError::unauthenticated("wrong e-mail or password");
        let Ok(email) = normalise_email(email) else {
            return Err(refused());
        };
        let (hash, actor) = if email == self.admin_email {
            (self.admin_hash.clone(), Some(Actor::Admin))
        } else {
            match self.record(&email)? {
                Some(record) if record.state == RecordState::Active => (
                    record.password_hash,
                    Some(Actor::Customer(record.customer_id)),
                ),
                _ => (self.dummy_hash.clone(), None),
            }
        };
        let matches = self
            .argon2(move || verify(&hash, password.as_bytes()))
            .await?;
        match actor {
            Some(actor) if matches => self.issue_token(actor),
            _ => Err(refused()),
        }
    }

    fn record(&self, email: &str) -> Result<Option<CredentialRecord>, GatewayError> {
        let Some(bytes) = self
            .credentials
            .get(email.as_bytes())
            .map_err(GatewayError::internal)?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(GatewayError::internal)
    }

    /// Reserves `email` for a new customer. `CONFLICT` (`email_taken`) if it
    /// belongs to someone, or another registration of it is under way.
    /// With a client `idempotency_key`, the customer id is derived from it and
    /// a repeat of a completed registration answers its first result.
    pub fn reserve(
        &self,
        email: &str,
        password_hash: String,
        idempotency_key: Option<&str>,
    ) -> Result<Reservation, GatewayError> {
        let taken = || GatewayError::Conflict {
            reason: "email_taken".to_owned(),
            message: "an account with this e-mail already exists".to_owned(),
        };
        if email == self.admin_email {
            return Err(taken());
        }
        let customer_id = idempotency_key.map_or_else(Uuid::new_v4, |key| {
            Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("register-customer:{key}").as_bytes(),
            )
        });
        let record = CredentialRecord {
            customer_id,
            password_hash,
            state: RecordState::Pending,
            idempotency_key: idempotency_key.map(str::to_owned),
            token: None,
            reserved_at_ms: millis(unix_now()),
        };
        let encoded = serde_json::to_vec(&record).map_err(GatewayError::internal)?;
        let current = self
            .credentials
            .get(email.as_bytes())
            .map_err(GatewayError::internal)?;
        if let Some(bytes) = &current {
            let existing: CredentialRecord =
                serde_json::from_slice(bytes).map_err(GatewayError::internal)?;
            let same_request =
                idempotency_key.is_some() && existing.idempotency_key.as_deref() == idempotency_key;
            match existing.state {
                RecordState::Active if same_request => {
                    return Ok(Reservation::Completed {
                        customer_id: existing.customer_id,
                        token: existing.token.unwrap_or_default(),
                    })
                }
                RecordState::Active => return Err(taken()),
                RecordState::Pending => {
                    let abandoned = millis(unix_now()).saturating_sub(existing.reserved_at_ms)
                        > millis(ABANDONED_AFTER);
                    if !same_request && !abandoned {
                        return Err(taken());
                    }
                }
            }
        }
        match self
            .credentials
            .compare_and_swap(email.as_bytes(), current, Some(encoded))
            .map_err(GatewayError::internal)?
        {
            Ok(()) => Ok(Reservation::Reserved { customer_id }),
            // Someone else changed the record between our read and our swap.
            Err(_) => Err(taken()),
        }
    }

    /// Marks the reservation of `email` for `customer_id` complete, durably.
    pub async fn confirm(
        &self,
        email: &str,
        customer_id: Uuid,
        token: &str,
    ) -> Result<(), GatewayError> {
        let Some(mut record) = self.record(email)? else {
            return Err(GatewayError::internal(format!(
                "the reservation of {email} vanished"
            )));
        };
        if record.customer_id != customer_id {
            return Err(GatewayError::internal(format!(
                "the reservation of {email} was taken over"
            )));
        }
        record.state = RecordState::Active;
        record.token = Some(token.to_owned());
        let encoded = serde_json::to_vec(&record).map_err(GatewayError::internal)?;
        self.credentials
            .insert(email.as_bytes(), encoded)
            .map_err(GatewayError::internal)?;
        self.flush().await
    }

    /// Drops a pending reservation of `email` for `customer_id` (its registration failed).
    pub fn release(&self, email: &str, customer_id: Uuid) {
        let outcome = self
            .credentials
            .fetch_and_update(email.as_bytes(), |current| {
                let record: Option<CredentialRecord> =
                    current.and_then(|bytes| serde_json::from_slice(bytes).ok());
                match record {
                    Some(record)
                        if record.customer_id == customer_id
                            && record.state == RecordState::Pending =>
                    {
                        None
                    }
                    _ => current.map(<[u8]>::to_vec),
                }
            });
        if let Err(error) = outcome {
            tracing::error!(%error, "cannot release a registration reservation");
        }
    }

    /// Makes every acknowledged credential change durable.
    pub async fn flush(&self) -> Result<(), GatewayError> {
        let _one_at_a_time = self.flush_lock.lock().await;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(GatewayError::internal)?
            .map(|_| ())
            .map_err(GatewayError::internal)
    }

    /// Whether the database answers.
    pub fn check(&self) -> Result<(), String> {
        self.credentials
            .get(b"")
            .map(|_| ())
            .map_err(|error| format!("credentials database: {error}"))
    }
}

/// A shared authenticator.
pub type SharedAuthenticator = Arc<Authenticator>;

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn settings() -> AuthSettings {
        AuthSettings {
            admin_email: "Admin@Shop.Test".to_owned(),
            admin_password: "admin-password".to_owned(),
            jwt_secret: b"test secret".to_vec(),
            token_ttl: Duration::from_secs(3600),
            hashing: PasswordHashing::Fast,
        }
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@c.de",
            "ann@.com",
            "a@b..c",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_customer_logs_in_with_the_registered_password_only() {
        let auth = Authenticator::temporary(settings()).unwrap();
        let hash = auth
            .hash_password("correct horse".to_owned())
            .await
            .unwrap();
        let Reservation::Reserved { customer_id } =
            auth.reserve("ann@example.com", hash, None).unwrap()
        else {
            panic!("expected a reservation");
        };
        assert!(
            auth.login("ann@example.com", "correct horse".to_owned())
                .await
                .is_err(),
            "a pending registration cannot log in"
        );
        auth.confirm("ann@example.com", customer_id, "customer-x@0")
            .await
            .unwrap();
        let token = auth
            .login("ANN@example.com", "correct horse".to_owned())
            .await
            .unwrap();
        assert_eq!(auth.verify_token(&token), Identity::Customer(customer_id));
        let wrong = auth
            .login("ann@example.com", "wrong horse".to_owned())
            .await;
        assert_eq!(wrong.unwrap_err().code(), "UNAUTHENTICATED");
    }

    #[tokio::test]
    async fn the_admin_logs_in_with_the_configured_credentials() {
        let auth = Authenticator::temporary(settings()).unwrap();
        let token = auth
            .login("admin@shop.test", "admin-password".to_owned())
            .await
            .unwrap();
        assert_eq!(
            auth.identify(Some(&format!("Bearer {token}"))),
            Identity::Admin
        );
        assert!(auth
            .login("admin@shop.test", "nope".to_owned())
            .await
            .is_err());
    }

    #[test]
    fn an_email_can_be_reserved_once_and_released() {
        let auth = Authenticator::temporary(settings()).unwrap();
        let first = auth
            .reserve("bo@example.com", "h".to_owned(), None)
            .unwrap();
        let Reservation::Reserved { customer_id } = first else {
            panic!("reserved")
        };
        let second = auth.reserve("bo@example.com", "h".to_owned(), None);
        assert_eq!(second.unwrap_err().code(), "CONFLICT");
        auth.release("bo@example.com", customer_id);
        assert!(matches!(
            auth.reserve("bo@example.com", "h".to_owned(), None),
            Ok(Reservation::Reserved { .. })
        ));
        assert_eq!(
            auth.reserve("admin@shop.test", "h".to_owned(), None)
                .unwrap_err()
                .code(),
            "CONFLICT"
        );
    }

    #[test]
    fn tokens_signed_with_another_secret_or_garbage_are_invalid() {
        let auth = Authenticator::temporary(settings()).unwrap();
        let mut other_settings = settings();
        other_settings.jwt_secret = b"another secret".to_vec();
        let other = Authenticator::temporary(other_settings).unwrap();
        let forged = other.issue_token(Actor::Admin).unwrap();
        assert!(matches!(auth.verify_token(&forged), Identity::Invalid(_)));
        assert!(matches!(
            auth.identify(Some("Bearer garbage")),
            Identity::Invalid(_)
        ));
        assert!(matches!(
            auth.identify(Some("Basic abc")),
            Identity::Invalid(_)
        ));
        assert_eq!(auth.identify(None), Identity::Anonymous);
    }
}
