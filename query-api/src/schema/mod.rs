//! The GraphQL schema of CONTRACT.md: [`query`], [`mutation`],
//! [`subscription`], and the object types they return in [`types`].
//!
//! Resolvers reach the backends through [`Gateway`] (shared by every request)
//! and the caller through [`RequestContext`] (one per request), both in the
//! async-graphql context; see [`Gateway::prepare`].

mod arguments;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;

use std::{sync::Arc, time::Instant};

use async_graphql::{Context, Data, Executor, Request, Response, Schema, ValidationMode};
use futures::{stream, stream::BoxStream, StreamExt};
use service_runtime::shutdown::Shutdown;
use uuid::Uuid;

use crate::{
    auth::{Authenticator, Identity},
    backend::{CommandSender, Projector, ReadModels},
    catalog_cache::CatalogCache,
    consistency::{wait_for, AppliedVersions, ConsistencyToken, WaitSettings},
    error::{tag_request_error, GatewayError},
    limits::{Admission, DocumentGuard, QueryLimits},
    loaders::{Freshness, Loaders},
};

pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

/// The async-graphql schema.
pub type RawSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The gateway's schema: async-graphql's, behind the [`DocumentGuard`] (depth
/// and alias limits, parse reuse), with every error of async-graphql's own
/// tagged `INVALID_INPUT`. HTTP, WebSocket and tests all execute through it.
///
/// A document is validated in full (every GraphQL rule) the first time it
/// is seen; once it passed, later requests with the same text and operation
/// run async-graphql's fast validation (complexity and the rules that depend
/// on the request) on a twin schema: full validation was a third of the work
/// of a small query. Variable values are still checked, when the arguments
/// are read.
#[derive(Clone)]
pub struct ShopSchema {
    schema: RawSchema,
    fast: RawSchema,
    guard: Arc<DocumentGuard>,
}

impl std::fmt::Debug for ShopSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopSchema")
            .field("limits", &self.guard.limits())
            .finish_non_exhaustive()
    }
}

fn tagged(mut response: Response) -> Response {
    if !response.errors.is_empty() {
        response.errors = response.errors.into_iter().map(tag_request_error).collect();
    }
    response
}

impl ShopSchema {
    /// Runs a query or mutation.
    pub async fn execute(&self, request: impl Into<Request>) -> Response {
        let mut request = request.into();
        match self.guard.admit(&mut request) {
            Err(error) => Response::from_errors(vec![error]),
            Ok(Admission::Validated) => tagged(self.fast.execute(request).await),
            Ok(Admission::New) => {
                let query = request.query.clone();
                let operation = request.operation_name.clone();
                let response = self.schema.execute(request).await;
                // Validation errors have no path; resolver errors do.
                if response.errors.iter().all(|error| !error.path.is_empty()) {
                    self.guard.mark_validated(&query, operation.as_deref());
                }
                tagged(response)
            }
        }
    }

    /// Runs a subscription (or any operation) as a stream of responses.
    pub fn execute_stream(&self, request: impl Into<Request>) -> BoxStream<'static, Response> {
        self.execute_stream_with(request.into(), None)
    }

    fn execute_stream_with(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        // Subscriptions are long-lived: full validation every time costs nothing that matters.
        if let Err(error) = self.guard.admit(&mut request) {
            return stream::once(async move { Response::from_errors(vec![error]) }).boxed();
        }
        let responses = match session_data {
            Some(data) => self.schema.execute_stream_with_session_data(request, data),
            None => self.schema.execute_stream(request),
        };
        responses.map(tagged).boxed()
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }

    /// The async-graphql schema inside.
    pub fn inner(&self) -> &RawSchema {
        &self.schema
    }
}

impl Executor for ShopSchema {
    async fn execute(&self, request: Request) -> Response {
        ShopSchema::execute(self, request).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        self.execute_stream_with(request, session_data)
    }
}

/// What every request shares: the backends, the credentials, the cache.
pub struct Gateway {
    /// The projectors (already guarded by timeouts and breakers).
    pub read_models: Arc<dyn ReadModels>,
    /// The command services.
    pub commands: Arc<dyn CommandSender>,
    /// Credentials and tokens.
    pub auth: Arc<Authenticator>,
    /// Hot catalog reads.
    pub catalog_cache: Arc<CatalogCache>,
    /// Versions seen applied by the projectors (spares repeated waits).
    pub applied: Arc<AppliedVersions>,
    /// Consistency waits and subscription polling.
    pub wait: WaitSettings,
    /// Ends subscriptions when the server stops.
    pub shutdown: Shutdown,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// What one request carries: who asks and how its commands are keyed.
#[derive(Debug)]
pub struct RequestContext {
    /// Who asks.
    pub identity: Identity,
    /// The client's `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// Carried into every command (`X-Correlation-Id`).
    pub correlation_id: Uuid,
    /// This request's id (`X-Causation-Id` of its commands).
    pub request_id: Uuid,
    /// The earliest read this request may use (raised by consistency waits).
    pub freshness: Arc<Freshness>,
}

/// Who is asking and how, as given by the HTTP layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Who asks.
    pub identity: Identity,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// The `X-Correlation-Id` header, if it was a UUID.
    pub correlation_id: Option<Uuid>,
}

impl Caller {
    /// A caller with no headers but its identity.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            idempotency_key: None,
            correlation_id: None,
        }
    }
}

impl Gateway {
    /// The per-request context data: the caller and a fresh DataLoader.
    pub fn request_data(&self, caller: Caller) -> (RequestContext, Loaders) {
        // A v4 UUID from the thread's generator: `Uuid::new_v4` asks the OS each time.
        let request_id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let freshness = Arc::new(Freshness::default());
        let loaders = Loaders::new(
            Arc::clone(&self.read_models),
            Arc::clone(&self.catalog_cache),
            Arc::clone(&freshness),
        );
        let context = RequestContext {
            identity: caller.identity,
            idempotency_key: caller.idempotency_key,
            correlation_id: caller.correlation_id.unwrap_or(request_id),
            request_id,
            freshness,
        };
        (context, loaders)
    }

    /// Attaches the caller to a GraphQL request, ready for `schema.execute`.
    pub fn prepare(
        &self,
        request: async_graphql::Request,
        caller: Caller,
    ) -> async_graphql::Request {
        let (context, loaders) = self.request_data(caller);
        request.data(context).data(loaders)
    }
}

/// Builds the schema over `gateway`, holding every request to `limits`.
pub fn build_schema(gateway: Arc<Gateway>, limits: QueryLimits) -> ShopSchema {
    let build = |mode| {
        Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
            .data(Arc::clone(&gateway))
            .limit_complexity(limits.max_complexity)
            .limit_recursive_depth(64)
            .validation_mode(mode)
            .finish()
    };
    ShopSchema {
        schema: build(ValidationMode::Strict),
        fast: build(ValidationMode::Fast),
        guard: Arc::new(DocumentGuard::new(limits)),
    }
}

/// The shared gateway from a resolver's context.
pub(crate) fn gateway<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Gateway>, GatewayError> {
    ctx.data::<Arc<Gateway>>()
        .map_err(|_| GatewayError::internal("the schema was built without a gateway"))
}

/// The request's context from a resolver's context.
pub(crate) fn request<'a>(ctx: &Context<'a>) -> Result<&'a RequestContext, GatewayError> {
    ctx.data::<RequestContext>()
        .map_err(|_| GatewayError::internal("the request was not prepared with Gateway::prepare"))
}

/// The request's DataLoader.
pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders, GatewayError> {
    ctx.data::<Loaders>()
        .map_err(|_| GatewayError::internal("the request was not prepared with Gateway::prepare"))
}

/// Resolves a nullable field: on error the field is `null` and the error is
/// reported with its path, as the GraphQL spec wants; async-graphql on its own
/// would leave the field out of the response. This is what turns one failing
/// projector into partial data rather than a hole in the response.
pub(crate) async fn nullable<T>(
    ctx: &Context<'_>,
    field: impl std::future::Future<Output = Result<Option<T>, GatewayError>>,
) -> Option<T> {
    match field.await {
        Ok(value) => value,
        Err(error) => {
            let error: async_graphql::Error = error.into();
            ctx.add_error(ctx.set_error_path(error.into_server_error(ctx.item.pos)));
            None
        }
    }
}

/// Waits, if a token was given, until the views of `reads` include it; later
/// reads of this request then never use anything older.
pub(crate) async fn await_token(
    ctx: &Context<'_>,
    token: Option<&str>,
    reads: &[Projector],
) -> Result<(), GatewayError> {
    let Some(token) = ConsistencyToken::parse_argument(token)? else {
        return Ok(());
    };
    let gateway = gateway(ctx)?;
    let request = request(ctx)?;
    let seen: Instant = wait_for(
        gateway.read_models.as_ref(),
        &gateway.applied,
        reads,
        &token,
        gateway.wait,
    )
    .await?;
    request.freshness.raise(seen);
    Ok(())
}
