//! `shop query-api`.

use std::process::ExitCode;

/// Flags of `shop query-api`: `--listen` (default 127.0.0.1:8080), `--data`
/// (the credentials database), the URL of every command service
/// (`SHOP_<NAME>_URL`) and projector (`SHOP_<NAME>_PROJECTOR_URL`), the admin
/// account (`SHOP_ADMIN_EMAIL`, `SHOP_ADMIN_PASSWORD`), `SHOP_JWT_SECRET`,
/// timeouts, breaker, cache and limits; see `shop query-api --help`.
#[derive(Debug, clap::Args)]
pub struct QueryApiArgs {
    #[command(flatten)]
    config: query_api::QueryApiConfig,
}

/// Runs the GraphQL gateway until SIGINT/SIGTERM.
pub async fn run(args: QueryApiArgs) -> anyhow::Result<ExitCode> {
    let shutdown = service_runtime::shutdown::signal();
    query_api::run(args.config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
