//! The gateway's tests: the schema through `schema.execute` over in-memory
//! backends, and the HTTP routes (GraphiQL, limits, WebSocket subscriptions)
//! on real sockets.

mod fixture;
mod http;
mod limits;
mod mutations;
mod queries;
mod resilience;
mod subscription;
